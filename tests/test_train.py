"""train.py on the embedded tiny model: the span collator, spans reaching PAC-LoRA inside ``Trainer``, a 4-bit
(QLoRA, bitsandbytes NF4 on CPU) run whose loss falls, and checkpoint resume that continues at the saved step.

Records are the tiny world's ``without_history`` prompts (~370 tokens, the shortest variant) to keep steps fast.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import TrainerCallback

from socialalign_lib.models import load_base_model
from socialalign_lib.pac_lora import NEWS, USER, PacLoraConfig, gate_weights, get_pac_model, pac_tuner
from socialalign_lib.paths import EMBEDDED_MODEL
from socialalign_lib.train import SPAN_KEY, SFTConfig, SpanCollator, SpanTrainer, tokenize_dataset, train_sft


@pytest.fixture(scope="module")
def records(tiny_course):
    return tiny_course.split("train", "without_history")


@pytest.fixture(scope="module")
def tokenizer():
    return load_base_model(EMBEDDED_MODEL, device="cpu")[1]


@pytest.fixture(scope="module")
def tokenized(records, tokenizer):
    return tokenize_dataset(records.select(range(8)), tokenizer)


def pac_model(seed: int = 0, init_weights: bool = True):
    """PAC-LoRA on the embedded model; ``init_weights=False`` draws B at random so the adapter acts from step 0."""
    base, _ = load_base_model(EMBEDDED_MODEL, device="cpu")
    torch.manual_seed(seed)
    return get_pac_model(base, PacLoraConfig(init_weights=init_weights))


def quick_config(tmp_path, **kw) -> SFTConfig:
    base = dict(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=5e-3,
        logging_steps=1,
        save_steps=1000,
        warmup_ratio=0.0,
        extra={"disable_tqdm": True},
    )
    return SFTConfig(**{**base, **kw})


# ---- collator -----------------------------------------------------------------------------------


def test_collator_pads_right_to_a_multiple_and_carries_spans():
    features = [
        {"input_ids": [5, 6, 7], "labels": [-100, -100, 7], "user_span": [0, 1], "news_span": [1, 2]},
        {
            "input_ids": list(range(10, 20)),
            "labels": [-100] * 8 + [18, 19],
            "user_span": [0, 4],
            "news_span": [5, 7],
        },
    ]
    batch = SpanCollator(pad_token_id=0, pad_to_multiple_of=8)(features)
    assert batch["input_ids"].shape == (2, 16)  # 10 rounded up to a multiple of 8
    assert batch["input_ids"][0].tolist() == [5, 6, 7] + [0] * 13
    assert batch["attention_mask"][0].tolist() == [1, 1, 1] + [0] * 13
    assert batch["labels"][0].tolist() == [-100, -100, 7] + [-100] * 13  # no loss on padding
    assert batch["labels"][1, 8:10].tolist() == [18, 19] and batch["attention_mask"][1].sum() == 10
    # right padding: token positions are unchanged, so the spans are passed as they are
    assert batch[SPAN_KEY].tolist() == [[[0, 1], [1, 2]], [[0, 4], [5, 7]]]
    assert batch[SPAN_KEY].dtype == torch.long


def test_collator_without_spans_gives_a_plain_lm_batch():
    batch = SpanCollator(pad_token_id=3, pad_to_multiple_of=None)([{"input_ids": [1, 2], "labels": [1, 2]}])
    assert set(batch) == {"input_ids", "attention_mask", "labels"} and batch["input_ids"].shape == (1, 2)


def test_tokenized_records_have_spans_inside_the_prompt_and_loss_on_the_reply_only(tokenized):
    for row in tokenized:
        prompt = sum(1 for x in row["labels"] if x == -100)
        assert (
            0
            <= row["user_span"][0]
            < row["user_span"][1]
            <= row["news_span"][0]
            < row["news_span"][1]
            <= prompt
        )
        assert prompt < len(row["input_ids"])  # there is a reply to learn


# ---- spans inside the Trainer ---------------------------------------------------------------------


class RecordSpans(TrainerCallback):
    """After each optimizer step, the spans the PAC-LoRA router placed for the latest forward."""

    def __init__(self, model):
        self.router = pac_tuner(model).router
        self.seen: list[torch.Tensor] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.seen.append(self.router.prefill.spans.clone())


@pytest.mark.slow
def test_spans_reach_the_pac_lora_layers_during_training(tmp_path, tokenized, tokenizer):
    model = pac_model()
    spy = RecordSpans(model)
    data = tokenized.select(range(2))
    train_sft(model, tokenizer, data, quick_config(tmp_path, max_steps=1), callbacks=[spy])
    expected = sorted(([r["user_span"], r["news_span"]] for r in data), key=str)
    assert len(spy.seen) == 1
    assert sorted(spy.seen[0].tolist(), key=str) == expected  # right padded: no shift
    layer_gates = gate_weights(model)
    assert all(a.shape == (2, 3) and b.shape == (2, 3) for a, b in layer_gates.values())


@pytest.mark.slow
def test_span_trainer_uses_spans_for_pac_lora_and_drops_them_for_other_models(tmp_path, tokenized):
    model = pac_model(init_weights=False)
    batch = SpanCollator(0)([tokenized[i] for i in range(2)])
    trainer = SpanTrainer(model=model, args=quick_config(tmp_path).training_arguments(), use_spans=True)
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        moved = dict(batch)
        moved[SPAN_KEY] = batch[SPAN_KEY].clone()
        moved[SPAN_KEY][:, NEWS] = moved[SPAN_KEY][:, USER]  # gate A now reads the user block
        assert not torch.isclose(loss, trainer.compute_loss(model, moved))
    with pytest.raises(ValueError, match="needs spans"):
        trainer.compute_loss(model, {k: v for k, v in batch.items() if k != SPAN_KEY})
    base, _ = load_base_model(EMBEDDED_MODEL, device="cpu")
    plain = SpanTrainer(model=base, args=quick_config(tmp_path).training_arguments(), use_spans=False)
    with torch.no_grad():
        assert math.isfinite(plain.compute_loss(base, dict(batch)).item())


# ---- 4-bit ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_qlora_4bit_pac_lora_training_loss_decreases(tmp_path, tokenized):
    bnb = pytest.importorskip("bitsandbytes")
    from peft import prepare_model_for_kbit_training

    base, tokenizer = load_base_model(EMBEDDED_MODEL, device="cpu", load_in_4bit=True)
    assert isinstance(base.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    torch.manual_seed(0)
    model = get_pac_model(base, PacLoraConfig())
    data = tokenized.select(range(4))  # 2 batches repeated: the loss must fall on data it has seen
    _, history = train_sft(model, tokenizer, data, quick_config(tmp_path, max_steps=8, learning_rate=1e-2))
    losses = [row["loss"] for row in history if "loss" in row]
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    # each batch is seen 4 times; compare the same two batches at the start and at the end
    assert losses[-2] + losses[-1] < losses[0] + losses[1] - 1.0, losses


# ---- resume ---------------------------------------------------------------------------------------


class StopAt(TrainerCallback):
    """Simulate an interruption right after the checkpoint of step ``step`` is written."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def _adapter_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


@pytest.mark.slow
def test_resume_continues_at_the_saved_step_and_matches_an_uninterrupted_run(tmp_path, tokenized, tokenizer):
    data = tokenized.select(range(8))
    config = quick_config(tmp_path / "interrupted", max_steps=4, save_steps=2)
    first = pac_model(seed=3)
    trainer, _ = train_sft(first, tokenizer, data, config, callbacks=[StopAt(2)])
    assert trainer.state.global_step == 2 and (tmp_path / "interrupted" / "checkpoint-2").is_dir()

    resumed = pac_model(seed=99)  # other initial weights: the checkpoint must overwrite them
    trainer, history = train_sft(resumed, tokenizer, data, config)
    assert trainer.state.global_step == 4
    assert [row["step"] for row in history if "loss" in row] == [3, 4]  # steps 1-2 are not run again

    straight = pac_model(seed=3)
    train_sft(straight, tokenizer, data, quick_config(tmp_path / "straight", max_steps=4, save_steps=2))
    a, b = _adapter_state(resumed), _adapter_state(straight)
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), (
        "resumed run diverged from the uninterrupted one"
    )
