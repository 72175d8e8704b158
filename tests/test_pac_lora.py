"""PAC-LoRA on stock transformers + peft: equivalences, routing, caching, padding, save/load, 4-bit.

Tiny random Qwen2 / Llama models built from configs (hidden 64, 2 layers, vocab 500), CPU.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftConfig, PeftModel, get_peft_model
from peft.utils import PeftType
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from socialalign_lib.pac_lora import (
    DEFAULT_TARGET_MODULES,
    NEWS,
    USER,
    MissingSpansError,
    PacLoraConfig,
    PacLoraLayer,
    PacLoraMergeError,
    PacSpanError,
    gate_weights,
    get_pac_model,
    load_pac_model,
    pac_tuner,
    place_spans,
    set_gate_mode,
    use_spans,
)

VOCAB = 500
PAD = 0
FAMILIES = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}
ADAPTER_TENSORS = {"pac_A", "pac_B", "pac_gate_A_in", "pac_gate_A_out", "pac_gate_B_in", "pac_gate_B_out"}


def tiny_model(family: str = "qwen2", seed: int = 0) -> torch.nn.Module:
    """A random 2-layer causal LM; initializer_range 0.1 keeps greedy logits away from near-ties."""
    config_cls, model_cls = FAMILIES[family]
    config = config_cls(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.1,
        pad_token_id=PAD,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return model_cls(config).eval()


def pac(model: torch.nn.Module, seed: int = 1, **config) -> PeftModel:
    """PAC-LoRA with random B by default, so the adapter changes the outputs from step 0."""
    torch.manual_seed(seed)
    return get_pac_model(model, PacLoraConfig(**{"init_weights": False, **config}))


def rows(lengths: list[int], seed: int = 2) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Random prompts (no pad id) and their spans: user = first third, news = second third."""
    generator = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(1, VOCAB, (n,), generator=generator) for n in lengths]
    spans = torch.tensor([[[0, n // 3], [n // 3, 2 * n // 3]] for n in lengths])
    return prompts, spans


def pad(prompts: list[torch.Tensor], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        sl = slice(width - len(p), width) if side == "left" else slice(0, len(p))
        ids[i, sl], mask[i, sl] = p, 1
    return ids, mask


def greedy(model, ids, mask, spans, new_tokens: int = 8, **kwargs):
    return model.generate(
        ids,
        attention_mask=mask,
        pac_spans=spans,
        max_new_tokens=new_tokens,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=PAD,
        **kwargs,
    )


def copy_lora_into_pac(lora: PeftModel, model: PeftModel) -> None:
    """Copy LoRA's A and B into a PAC-LoRA model with n=1 (same parameter layout)."""
    lora_params = dict(lora.named_parameters())
    with torch.no_grad():
        for name, param in model.named_parameters():
            for ours, theirs in (("pac_A", "lora_A"), ("pac_B", "lora_B")):
                if f".{ours}." in name:
                    param.copy_(lora_params[name.replace(ours, theirs)])


# ---- equivalences with peft LoRA --------------------------------------------------------------


def assert_lora_equal(got: torch.Tensor, expected: torch.Tensor, routing: str) -> None:
    """Bitwise for token routing (same ops as peft); fp32 rounding for the folded sequence form."""
    if routing == "token":
        assert torch.equal(got, expected)
    else:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("routing", ["sequence", "token"])
def test_one_expert_is_peft_lora(routing):
    """n=1: gates are softmax of one logit = 1.0, so forward is LoRA, dropout included.

    Token routing runs peft's own two matmuls and is bit-identical. Sequence routing folds the expert into a
    batched ``bmm``/``baddbmm`` whose fp32 summation order differs from ``F.linear`` (up to ~1e-5 on these
    logits with torch 2.13): equal to fp32 rounding. The tolerance is ~100x below what one wrong expert,
    a missing scaling or a dropped dropout mask moves the logits (checked in
    ``test_one_expert_tolerance_catches_a_real_bug``)."""
    base = tiny_model()
    torch.manual_seed(3)
    lora = get_peft_model(
        copy.deepcopy(base),
        LoraConfig(
            r=8,
            lora_alpha=16,
            lora_dropout=0.1,
            target_modules=list(DEFAULT_TARGET_MODULES),
            init_lora_weights=False,
        ),
    ).train()
    model = pac(copy.deepcopy(base), n_experts=1, routing=routing).train()
    copy_lora_into_pac(lora, model)
    prompts, spans = rows([24, 24, 24])
    ids = torch.stack(prompts)

    torch.manual_seed(4)
    expected = lora(ids, labels=ids)
    torch.manual_seed(4)
    got = model(ids, labels=ids, pac_spans=spans)
    assert_lora_equal(got.logits, expected.logits, routing)

    expected.loss.backward()
    got.loss.backward()
    ours = dict(model.named_parameters())
    for name, param in lora.named_parameters():
        if param.requires_grad:
            # the folded form sums the A/B gradient per sequence, then over the batch: same math, other order;
            # the absolute tolerance is fp32 rounding relative to the tensor's largest gradient
            grad = ours[name.replace("lora_", "pac_")].grad
            atol = 1e-5 * float(param.grad.abs().max())
            torch.testing.assert_close(grad, param.grad, rtol=1e-5, atol=atol)
    gate_grads = [p.grad for n, p in model.named_parameters() if "pac_gate" in n]
    assert gate_grads and all(g is not None for g in gate_grads)


def test_one_expert_tolerance_catches_a_real_bug():
    """The sequence-form tolerance must still fail when one expert is 1% off (a wrong scaling or dropout)."""
    base = tiny_model()
    torch.manual_seed(3)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=list(DEFAULT_TARGET_MODULES), init_lora_weights=False)
    lora = get_peft_model(copy.deepcopy(base), cfg).eval()
    model = pac(copy.deepcopy(base), n_experts=1, routing="sequence").eval()
    copy_lora_into_pac(lora, model)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".pac_B." in name:
                param.mul_(1.01)
    prompts, spans = rows([24, 24, 24])
    ids = torch.stack(prompts)
    with torch.no_grad(), pytest.raises(AssertionError):
        assert_lora_equal(model(ids, pac_spans=spans).logits, lora(ids).logits, "sequence")


@pytest.mark.parametrize("routing", ["sequence", "token"])
def test_uniform_gates_are_lora_with_mean_experts(routing):
    """n=3 with both gates 1/3: sum_j B_j/3 sum_i A_i/3 = mean(B) mean(A)."""
    base = tiny_model()
    model = pac(copy.deepcopy(base), n_experts=3, gate_mode="uniform", routing=routing).eval()
    lora = get_peft_model(
        copy.deepcopy(base), LoraConfig(r=8, lora_alpha=16, target_modules=list(DEFAULT_TARGET_MODULES))
    )
    lora.eval()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if ".lora_A." in name:
                param.copy_(params[name.replace("lora_A", "pac_A")].reshape(3, 8, -1).mean(0))
            elif ".lora_B." in name:
                weight_b = params[name.replace("lora_B", "pac_B")]
                param.copy_(weight_b.reshape(weight_b.shape[0], 3, 8).mean(1))
    prompts, spans = rows([20, 20])
    ids = torch.stack(prompts)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, pac_spans=spans).logits, lora(ids).logits, rtol=1e-5, atol=2e-6)


# ---- routing -----------------------------------------------------------------------------------


def test_gates_depend_on_span_content_only():
    """Sequence gates read the spans: tokens after the spans (the response) never move them.

    Changing the news moves gate A everywhere, and gate B wherever the layer input already mixes in
    news-routed states (K/V of the user tokens come from news-gated experts): only the first
    projections of layer 0, which read the token embeddings, keep gate B exactly.
    """
    model = pac(tiny_model()).eval()
    prompts, spans = rows([30])
    ids = prompts[0][None]
    with torch.no_grad():
        model(ids, pac_spans=spans)
        reference = gate_weights(model)
        changed_response = ids.clone()
        changed_response[0, 25:] = (changed_response[0, 25:] + 7) % (VOCAB - 1) + 1
        model(changed_response, pac_spans=spans)
        after_response = gate_weights(model)
        changed_news = ids.clone()
        changed_news[0, 12:18] = (changed_news[0, 12:18] + 7) % (VOCAB - 1) + 1
        model(changed_news, pac_spans=spans)
        after_news = gate_weights(model)
    assert len(reference) == 2 * len(DEFAULT_TARGET_MODULES)
    for layer, (gate_a, gate_b) in reference.items():
        assert gate_a.shape == gate_b.shape == (1, 3)
        torch.testing.assert_close(gate_a.sum(-1), torch.ones(1))
        assert torch.equal(after_response[layer][0], gate_a) and torch.equal(after_response[layer][1], gate_b)
        assert not torch.allclose(after_news[layer][0], gate_a)  # news gate follows the news
        if layer.startswith("model.layers.0.self_attn.") and not layer.endswith("o_proj"):
            assert torch.equal(after_news[layer][1], gate_b)


def test_gates_learn_from_lora_like_init():
    """B = 0 at init: A and gate gradients are exactly 0 at step 1, nonzero after one update."""
    model = pac(tiny_model(), init_weights=True, lora_dropout=0.0).train()
    prompts, spans = rows([16, 16, 16, 16])
    ids = torch.stack(prompts)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    def step() -> dict[str, torch.Tensor]:
        optimizer.zero_grad()
        model(ids, labels=ids, pac_spans=spans).loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        optimizer.step()
        return grads

    first = step()
    assert all(g.abs().sum() == 0 for n, g in first.items() if "pac_A" in n or "pac_gate" in n)
    assert all(g.abs().sum() > 0 for n, g in first.items() if "pac_B" in n)
    second = step()
    assert all(g.abs().sum() > 0 for n, g in second.items() if "pac_gate_A" in n or "pac_gate_B_out" in n)
    with torch.no_grad():
        model.eval()(ids, pac_spans=spans)
    gate_a, gate_b = gate_weights(model)["model.layers.1.mlp.down_proj"]
    assert not torch.allclose(gate_a[0], gate_a[1]) and not torch.allclose(gate_b[0], gate_b[1])


@pytest.mark.parametrize(
    ("n_experts", "gate_mode", "routing"),
    [
        (1, "learned", "sequence"),
        (3, "learned", "sequence"),
        (3, "learned", "token"),
        (3, "uniform_a", "sequence"),
        (3, "uniform", "token"),
    ],
)
def test_every_trainable_parameter_gets_a_gradient(n_experts, gate_mode, routing):
    """DDP with find_unused_parameters=False needs a gradient for every trainable parameter."""
    model = pac(tiny_model(), n_experts=n_experts, gate_mode=gate_mode, routing=routing).train()
    prompts, spans = rows([18, 18])
    ids = torch.stack(prompts)
    model(ids, labels=ids, pac_spans=spans).loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert all(".pac_" in n for n in trainable)
    assert [n for n, p in trainable.items() if p.grad is None] == []
    has_gate_a = any("pac_gate_A" in n for n in trainable)
    has_gate_b = any("pac_gate_B" in n for n in trainable)
    assert (has_gate_a, has_gate_b) == (
        gate_mode in ("learned", "uniform_b"),
        gate_mode in ("learned", "uniform_a"),
    )


def official_token_routing(layer: PacLoraLayer, x: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """The official SocialAlign layer (eval): per-token gates from x zeroed outside each span, expert loops."""
    n, r, name = layer.n_experts["default"], layer.r["default"], "default"
    positions = torch.arange(x.shape[1])
    news = ((positions >= spans[:, NEWS, :1]) & (positions < spans[:, NEWS, 1:])).float()[..., None]
    user = ((positions >= spans[:, USER, :1]) & (positions < spans[:, USER, 1:])).float()[..., None]
    gate_a = torch.softmax(layer.pac_gate_A_out[name](F.gelu(layer.pac_gate_A_in[name](x * news))), -1)
    gate_b = torch.softmax(layer.pac_gate_B_out[name](F.gelu(layer.pac_gate_B_in[name](x * user))), -1)
    weight_a, weight_b = layer.pac_A[name].weight, layer.pac_B[name].weight
    analyzed = sum(gate_a[..., i : i + 1] * (x @ weight_a[i * r : (i + 1) * r].T) for i in range(n))
    written = sum(gate_b[..., j : j + 1] * (analyzed @ weight_b[:, j * r : (j + 1) * r].T) for j in range(n))
    return layer.base_layer(x) + 2.0 * written


def test_token_routing_is_the_official_layer_at_prefill():
    model = pac(tiny_model(), routing="token").eval()
    prompts, spans = rows([21, 21])
    ids = torch.stack(prompts)
    layer = model.get_base_model().model.layers[1].mlp.up_proj
    captured = {}
    handle = layer.register_forward_hook(lambda mod, args, out: captured.update(x=args[0], out=out))
    with torch.no_grad():
        model(ids, pac_spans=spans)
        expected = official_token_routing(layer, captured["x"], spans)
    handle.remove()
    torch.testing.assert_close(captured["out"], expected, rtol=1e-5, atol=1e-6)
    gate_a, gate_b = gate_weights(model)["model.layers.1.mlp.up_proj"]
    assert gate_a.shape == (2, 21, 3)
    outside = torch.ones(21, dtype=torch.bool)
    outside[: 2 * 21 // 3] = False  # response tokens: outside both spans -> uniform gates
    torch.testing.assert_close(gate_a[:, outside], torch.full_like(gate_a[:, outside], 1 / 3))
    torch.testing.assert_close(gate_b[:, outside], torch.full_like(gate_b[:, outside], 1 / 3))
    with torch.no_grad():
        sequence_routed = pac(tiny_model(), routing="sequence").eval()(ids, pac_spans=spans).logits
    assert not torch.allclose(sequence_routed, model(ids, pac_spans=spans).logits)


def test_token_routing_is_the_official_layer_at_decode():
    """At a cached decode step the official code takes the new token for a user token: gate B from the token
    itself, gate A uniform (index 0 of a one-token input lies before the user span's end, not in the news)."""
    model = pac(tiny_model(), routing="token").eval()
    prompts, spans = rows([21, 21])
    ids = torch.stack(prompts)
    layer = model.get_base_model().model.layers[1].mlp.up_proj
    steps = []
    handle = layer.register_forward_hook(lambda mod, args, out: steps.append((args[0], out)))
    with torch.no_grad():
        prefill = model(ids, pac_spans=spans, use_cache=True)
        nxt = prefill.logits[:, -1].argmax(-1, keepdim=True)
        model(nxt, cache=prefill.past_key_values, use_cache=True)
    handle.remove()
    x, out = steps[-1]
    assert x.shape[1] == 1
    with torch.no_grad():
        expected = official_token_routing(layer, x, spans)  # the same spans: index 0 < user end, not in news
        all_uniform = official_token_routing(layer, x, torch.zeros_like(spans))  # the old rule: both uniform
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out, all_uniform, rtol=1e-5, atol=1e-6)
    # so cached decoding differs from re-running the whole sequence (response tokens: both gates uniform)
    cached = greedy(model, ids, torch.ones_like(ids), spans, new_tokens=4, use_cache=True)
    uncached = greedy(model, ids, torch.ones_like(ids), spans, new_tokens=4, use_cache=False)
    torch.testing.assert_close(cached.scores[0], uncached.scores[0], rtol=0, atol=1e-5)  # the prefill step
    assert not torch.allclose(cached.scores[1], uncached.scores[1], rtol=0, atol=1e-5)


def test_set_gate_mode_ablates_at_run_time():
    model = pac(tiny_model()).eval()
    prompts, spans = rows([18])
    with torch.no_grad():
        learned = model(prompts[0][None], pac_spans=spans).logits
        set_gate_mode(model, "uniform_a")
        ablated = model(prompts[0][None], pac_spans=spans).logits
        gate_a, gate_b = gate_weights(model)["model.layers.0.self_attn.q_proj"]
    torch.testing.assert_close(gate_a, torch.full((1, 3), 1 / 3))
    assert not torch.allclose(gate_b, torch.full((1, 3), 1 / 3)) and not torch.allclose(learned, ablated)
    uniform_model = pac(tiny_model(), gate_mode="uniform")
    with pytest.raises(ValueError, match="built without the gates"):
        set_gate_mode(uniform_model, "learned")


# ---- generation --------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_greedy_with_cache_equals_without(family, routing="sequence"):
    """Sequence routing decodes as it prefills. (Token routing does not: see the official decode rule below.)"""
    model = pac(tiny_model(family), routing=routing).eval()
    prompts, spans = rows([20, 14])
    ids, mask = pad(prompts, "left")
    cached = greedy(model, ids, mask, spans, use_cache=True)
    uncached = greedy(model, ids, mask, spans, use_cache=False)
    assert torch.equal(cached.sequences, uncached.sequences)
    for step_cached, step_uncached in zip(cached.scores, uncached.scores):
        torch.testing.assert_close(step_cached, step_uncached, rtol=0, atol=1e-5)


@pytest.mark.parametrize("routing", ["sequence", "token"])
def test_left_padded_batch_equals_one_at_a_time(routing):
    """Spans are given in each row's own coordinates; the router shifts them by the leading pads."""
    model = pac(tiny_model(), routing=routing).eval()
    prompts, spans = rows([23, 11, 17])
    ids, mask = pad(prompts, "left")
    batched = greedy(model, ids, mask, spans)
    for i, prompt in enumerate(prompts):
        alone = greedy(model, prompt[None], torch.ones(1, len(prompt), dtype=torch.long), spans[i : i + 1])
        assert torch.equal(batched.sequences[i, ids.shape[1] :], alone.sequences[0, len(prompt) :])
        for step_batched, step_alone in zip(batched.scores, alone.scores):
            torch.testing.assert_close(step_batched[i], step_alone[0], rtol=0, atol=1e-5)


def test_right_padded_training_batch_equals_one_at_a_time():
    model = pac(tiny_model()).eval()
    prompts, spans = rows([23, 11])
    ids, mask = pad(prompts, "right")
    with torch.no_grad():
        batched = model(ids, attention_mask=mask, pac_spans=spans).logits
        for i, prompt in enumerate(prompts):
            alone = model(prompt[None], pac_spans=spans[i : i + 1]).logits[0]
            torch.testing.assert_close(batched[i, : len(prompt)], alone, rtol=0, atol=1e-5)


def test_beams_and_returned_sequences_expand_spans():
    model = pac(tiny_model()).eval()
    prompts, spans = rows([20, 14])
    ids, mask = pad(prompts, "left")
    out = greedy(model, ids, mask, spans, new_tokens=5, num_beams=3, num_return_sequences=2)
    assert out.sequences.shape == (4, ids.shape[1] + 5)
    alone = greedy(
        model, prompts[1][None], torch.ones(1, 14, dtype=torch.long), spans[1:], new_tokens=5, num_beams=3
    )
    assert torch.equal(out.sequences[2, ids.shape[1] :], alone.sequences[0, 14:])
    sampled = model.generate(
        ids, attention_mask=mask, pac_spans=spans, max_new_tokens=3, do_sample=True, num_return_sequences=3
    )
    assert sampled.shape[0] == 6


def test_chunked_prefill_is_refused():
    model = pac(tiny_model()).eval()
    prompts, spans = rows([20])
    with pytest.raises(PacSpanError, match="prefill_chunk_size"):
        model.generate(prompts[0][None], pac_spans=spans, max_new_tokens=2, prefill_chunk_size=8)


# ---- errors ------------------------------------------------------------------------------------


def test_missing_spans_is_an_error_but_disabled_adapters_need_none():
    model = pac(tiny_model()).eval()
    prompts, spans = rows([12])
    ids = prompts[0][None]
    with pytest.raises(MissingSpansError, match="pac_spans"):
        model(ids)
    with pytest.raises(MissingSpansError):
        model.generate(ids, max_new_tokens=2)
    with torch.no_grad(), model.disable_adapter():
        assert torch.equal(model(ids).logits, tiny_model()(ids).logits)
    with torch.no_grad():  # the bare transformers model takes pac_spans= too (the backbone hook pops it)
        assert torch.equal(
            model.get_base_model()(ids, pac_spans=spans).logits, model(ids, pac_spans=spans).logits
        )


@pytest.mark.parametrize(
    ("spans", "batch", "seq", "mask", "match"),
    [
        (torch.zeros(1, 2, dtype=torch.long), 1, 8, None, "shape"),
        (torch.zeros(1, 2, 2), 1, 8, None, "integer"),
        (torch.tensor([[[0, 3], [5, 4]]]), 1, 8, None, "start <= end"),
        (torch.tensor([[[0, 3], [3, 6]]] * 2), 3, 8, None, "rows"),
        (torch.tensor([[[0, 3], [3, 9]]]), 1, 8, None, "beyond"),
        (torch.tensor([[[2, 4], [4, 7]]]), 1, 8, torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]]), "beyond"),
        (torch.tensor([[[0, 3], [3, 6]]]), 1, 8, torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), "covers padding"),
    ],
)
def test_bad_spans_are_named(spans, batch, seq, mask, match):
    with pytest.raises(PacSpanError, match=match):
        place_spans(spans, batch, seq, mask)


def test_place_spans_shifts_left_padding_once():
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    spans = torch.tensor([[[0, 2], [2, 4]], [[0, 3], [3, 6]]])
    assert place_spans(spans, 2, 6, mask).tolist() == [[[2, 4], [4, 6]], [[0, 3], [3, 6]]]
    assert place_spans(spans[:1], 3, 4, allow_expand=True).shape == (3, 2, 2)


def test_merge_refuses_and_unload_restores_the_base():
    base = tiny_model()
    with torch.no_grad():
        ids = torch.randint(1, VOCAB, (1, 10))
        expected = base(ids).logits
    model = pac(base)
    with pytest.raises(PacLoraMergeError, match="spans"):
        model.merge_and_unload()
    with pytest.raises(PacLoraMergeError):
        model.base_model.merge_adapter()
    unloaded = model.unload()
    with torch.no_grad():
        torch.testing.assert_close(unloaded(ids).logits, expected, rtol=0, atol=0)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_keeps_spans_for_recompute(use_reentrant):
    """Checkpointed layers re-run during backward, after forward returned: spans must still be there."""
    prompts, spans = rows([20, 20])
    ids = torch.stack(prompts)
    grads, calls = [], []
    for checkpointing in (False, True):
        model = pac(tiny_model(), lora_dropout=0.0).train()
        if checkpointing:
            model.get_base_model().activation_checkpointing_enable({"use_reentrant": use_reentrant})
            model.enable_input_require_grads()
        counter = []
        model.get_base_model().model.layers[1].mlp.up_proj.register_forward_pre_hook(
            lambda *_, c=counter: c.append(1)
        )
        model(ids, labels=ids, pac_spans=spans).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
        calls.append(len(counter))
    assert calls == [1, 2]  # the checkpointed run really recomputed the layer
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7)


# ---- save / load -------------------------------------------------------------------------------


def test_save_and_load_roundtrip(tmp_path: Path):
    base = tiny_model()
    model = pac(copy.deepcopy(base), n_experts=3).eval()
    prompts, spans = rows([19, 19])
    ids = torch.stack(prompts)
    with torch.no_grad():
        expected = model(ids, pac_spans=spans).logits
    expected_gates = gate_weights(model)
    model.save_pretrained(tmp_path)

    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert len(saved) == 2 * len(DEFAULT_TARGET_MODULES) * len(ADAPTER_TENSORS)
    for key in saved:
        assert key.startswith("base_model.model.model.layers.") and key.endswith(".weight")
        assert key.split(".")[-2] in ADAPTER_TENSORS and "default" not in key and "base_layer" not in key
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (config["peft_type"], config["n_experts"], config["routing"]) == ("PAC_LORA", 3, "sequence")
    assert isinstance(PeftConfig.from_pretrained(tmp_path), PacLoraConfig)

    for adapter_name in ("default", "other"):
        loaded = load_pac_model(copy.deepcopy(base), str(tmp_path), adapter_name=adapter_name).eval()
        with torch.no_grad():
            assert torch.equal(loaded(ids, pac_spans=spans).logits, expected)
        for layer, (gate_a, gate_b) in gate_weights(loaded).items():
            assert torch.equal(gate_a, expected_gates[layer][0]) and torch.equal(
                gate_b, expected_gates[layer][1]
            )

    plain = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path)).eval()
    with torch.no_grad(), use_spans(plain, spans):
        assert torch.equal(plain(ids).logits, expected)

    bare = copy.deepcopy(base)
    bare.load_adapter(str(tmp_path))  # transformers' own PEFT integration
    bare.eval()
    with torch.no_grad():
        assert torch.equal(bare(ids, pac_spans=spans).logits, expected)
    with use_spans(bare, spans):
        bare_tokens = bare.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=PAD)
    tokens = model.generate(ids, pac_spans=spans, max_new_tokens=4, do_sample=False, pad_token_id=PAD)
    assert torch.equal(bare_tokens, tokens)


def test_peft_type_is_registered():
    """Trips if a peft / Python upgrade breaks the PeftType enum extension or the registration."""
    assert PeftType("PAC_LORA") is PeftType.PAC_LORA and "PAC_LORA" in list(PeftType)
    assert PeftType.PAC_LORA.value == "PAC_LORA"
    model = pac(tiny_model())
    assert isinstance(pac_tuner(model).model.model.layers[0].self_attn.q_proj, PacLoraLayer)
    assert "pac_spans" in model.special_peft_forward_args


# ---- 4-bit -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_qlora_4bit_trains(tmp_path: Path):
    bnb = pytest.importorskip("bitsandbytes")
    from transformers import BitsAndBytesConfig

    tiny_model().save_pretrained(tmp_path)
    quantized = Qwen2ForCausalLM.from_pretrained(
        tmp_path,
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        ),
        device_map="cpu",
    )
    model = pac(quantized).train()
    layer = model.get_base_model().model.layers[0].self_attn.q_proj
    assert isinstance(layer, PacLoraLayer) and isinstance(layer.base_layer, bnb.nn.Linear4bit)
    assert layer.pac_A["default"].weight.dtype == torch.float32
    prompts, spans = rows([24] * 4)
    ids = torch.stack(prompts)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = model(ids, labels=ids, pac_spans=spans).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0] - 0.1
    model.eval()
    out = model.generate(ids[:2], pac_spans=spans[:2], max_new_tokens=3, do_sample=False, pad_token_id=PAD)
    assert out.shape == (2, 27)
