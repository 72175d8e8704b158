"""IDPOP (eq. 12-14): μ and W, the penalty's one-sidedness, preference pairs, and equality with TRL's sigmoid
DPO loss at λ = 0 on the same batch (which also trips if a TRL upgrade changes ``_compute_loss``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from socialalign_lib.models import TinyModelConfig, build_tiny_model, train_tokenizer
from socialalign_lib.popularity.idpop import (
    MU_COLUMN,
    IDPOPSettings,
    IDPOPTrainer,
    PreferencePair,
    PreferenceRunConfig,
    build_preference_pairs,
    eval_curve,
    idpop_loss,
    pair_mu,
    preference_records,
    split_pairs,
    train_preference,
    weight_scores,
)
from socialalign_lib.popularity.smp_llm import PromptConfig, build_examples, posts_frame, select_users
from socialalign_lib.popularity.smp_llm_train import (
    GenerationSettings,
    LoraSettings,
    SFTRunConfig,
    answer_records,
    fresh_copy,
    generate_answers,
    prompt_texts,
    train_sft,
)


@pytest.fixture(scope="module")
def examples():
    from socialalign_lib.world import generate_world

    w = generate_world(size="tiny", seed=0)
    sel = select_users(posts_frame(w.smp_posts)).head(40)  # 8 users
    cfg = PromptConfig(post_ids="index", include_uid=False, max_tags=2)
    return build_examples(sel, (1,), "train", cfg), build_examples(sel, (1,), "test", cfg)


@pytest.fixture(scope="module")
def tiny(examples):
    """A random Qwen2 (hidden 64, 2 layers) with a byte-level BPE trained on the prompts in a second."""
    train, test = examples
    texts = [e.messages()[0]["content"] + e.answer for e in train + test]
    tok = train_tokenizer(texts, vocab_size=420)
    cfg = TinyModelConfig(
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    return build_tiny_model(tok, cfg, seed=0), tok


def test_answer_records_match_inference_prompts(tiny, examples):
    model, tok = tiny
    _, test = examples
    eos = answer_records(test[:2], tok)
    assert eos[0]["prompt"] == prompt_texts(tok, test[:1])[0] and eos[0]["prompt"].endswith("assistant\n")
    assert eos[0]["completion"] == test[0].answer  # TRL appends the eos
    chat = answer_records(test[:2], tok, ["7.5", "x"], answer_end="chat")
    assert (
        chat[1]["completion"] == [{"role": "assistant", "content": "x"}]
        and chat[0]["prompt"][0]["role"] == "user"
    )
    with pytest.raises(ValueError):
        answer_records(test[:1], tok, answer_end="eol")


# --------------------------------------------------------------------------------------------------------
# W and μ
# --------------------------------------------------------------------------------------------------------


def test_weight_scores_eq13():
    m = np.array([0.0, 0.5, 1.0, 2.0])
    w = weight_scores(m, alpha=1.0)
    assert w[0] == pytest.approx(10.0) and np.all(np.diff(w) < 0)
    assert w[-1] == pytest.approx(10 * np.exp(-2.0 / 2.0))
    assert weight_scores(m, alpha=3.0)[-1] < w[-1]  # larger α: faster decay
    assert np.all(weight_scores(np.array([1.0, 1.0])) == 10.0)  # no range, no preference strength


def test_mu_grows_as_the_weight_gap_shrinks():
    gaps = np.array([5.0, 2.0, 1.0, 0.5, 0.1, 0.0])
    mu = pair_mu(10.0 + 0 * gaps, 10.0 - gaps, lam=0.5, delta=0.1, mu_max=5.0)
    assert np.all(np.diff(mu) >= 0) and np.all(np.diff(mu[:-1]) > 0)
    assert mu[0] == pytest.approx(0.5 / 5.1)
    assert mu[-1] == 5.0  # a tie would give λ/δ; clamped
    assert (
        pair_mu(np.array([1.0]), np.array([9.0]), lam=0.5, delta=0.1)[0] == 0.0
    )  # mis-ordered: never negative
    assert pair_mu(np.array([1.0]), np.array([1.5]), lam=0.5, delta=0.5)[0] == 5.0  # gap + δ = 0: no inf


def test_penalty_is_active_only_when_the_chosen_answer_loses_probability():
    ref_c, ref_r = torch.tensor([-5.0, -5.0]), torch.tensor([-6.0, -6.0])
    pol_c = torch.tensor([-4.0, -7.0], requires_grad=True)  # pair 0: more likely than ref; pair 1: less
    pol_r = torch.tensor([-8.0, -8.0])
    mu = torch.tensor([2.0, 2.0])
    loss, dpo, penalty = idpop_loss(pol_c, pol_r, ref_c, ref_r, mu, beta=0.1)
    assert penalty[0].item() == 0 and penalty[1].item() == pytest.approx(2.0 * 2.0)
    assert torch.allclose(loss, dpo + penalty)
    delta = (pol_c - ref_c) - (pol_r - ref_r)
    assert torch.allclose(dpo, -torch.nn.functional.logsigmoid(0.1 * delta))
    loss.sum().backward()
    grad_dpo = -(0.1 * torch.sigmoid(-0.1 * delta)).detach()
    assert pol_c.grad[0].item() == pytest.approx(
        grad_dpo[0].item()
    )  # no penalty gradient above the reference
    assert pol_c.grad[1].item() == pytest.approx(grad_dpo[1].item() - 2.0)  # the penalty pushes log π(y_w) up
    _, _, zero = idpop_loss(pol_c, pol_r, ref_c, ref_r, 0.0)
    assert torch.all(zero == 0)


# --------------------------------------------------------------------------------------------------------
# Preference pairs
# --------------------------------------------------------------------------------------------------------


def test_build_preference_pairs(examples):
    _, test = examples
    ex = test[:5]
    t = [e.target for e in ex]
    samples = [
        [f"{t[0] + 2:.1f}", f"{t[0] + 0.5:.1f}"],  # second is closer → chosen
        ["7.0", "7.0"],  # identical: dropped
        ["无", ""],  # both not numbers: dropped
        ["不知道", f"{t[3] + 1:.1f}"],  # the number wins over the failure
        [f"{t[4] - 0.1:.1f}", f"{t[4] + 3:.1f}"],
    ]
    pairs, stats = build_preference_pairs(ex, samples, IDPOPSettings(lam=0.5, alpha=1.0, delta=0.1))
    assert (stats.n_pairs, stats.identical, stats.both_failed, stats.one_failed) == (3, 1, 1, 1)
    assert stats.failed_samples == 3
    assert pairs[0].chosen == samples[0][1] and pairs[0].rejected == samples[0][0]
    assert pairs[1].chosen == samples[3][1] and pairs[1].rejected == "不知道"
    assert all(p.chosen_error <= p.rejected_error for p in pairs)
    errors = [e for p in pairs for e in (p.chosen_error, p.rejected_error)]
    w = weight_scores(
        np.array([[p.chosen_error, p.rejected_error] for p in pairs]), 1.0, min(errors), max(errors)
    )
    assert [p.mu for p in pairs] == pytest.approx(list(pair_mu(w[:, 0], w[:, 1], 0.5, 0.1)))
    assert pairs[2].mu < pairs[0].mu  # a clearer preference (|0.1| vs |3|) gets a weaker penalty
    assert preference_records(pairs, None, answer_end="chat")[0][MU_COLUMN] == pytest.approx(pairs[0].mu)


# --------------------------------------------------------------------------------------------------------
# IDPOPTrainer vs TRL's DPOTrainer
# --------------------------------------------------------------------------------------------------------


def _records(examples, tok, mu: float) -> list[dict]:
    _, test = examples
    pairs = [
        PreferencePair(e, f"{e.target:.1f}", f"{e.target + 1.7:.1f}", 0.0, 1.7, mu=mu + 0.25 * i)
        for i, e in enumerate(test[:4])
    ]
    return preference_records(pairs, tok)


def _trainer(cls, model, tok, records, tmp_path, ref_model=None, precompute=True):
    args = DPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=1,
        beta=0.1,
        loss_type=["sigmoid"],
        precompute_ref_log_probs=precompute,
        bf16=False,
        use_cpu=True,
        activation_checkpointing=False,
        report_to="none",
        save_strategy="no",
        dataset_num_proc=None,
        disable_tqdm=True,
    )
    trainer = cls(
        model=fresh_copy(model),
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=tok,
        peft_config=LoraSettings(r=4, alpha=8, dropout=0.0).peft_config(),
    )
    gen = torch.Generator().manual_seed(0)  # LoRA B starts at 0 (policy = reference): move it, identically
    for name, p in sorted(trainer.model.named_parameters()):
        if "lora_B" in name:
            p.data.copy_(0.05 * torch.randn(p.shape, generator=gen))
    return trainer


def _batch(trainer):
    return trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])


def _grads(trainer):
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


def _policy_chosen_logps(trainer, batch, model=None):
    """Sequence log-probs of the chosen answers computed by hand (logits → log-softmax → gather)."""
    model = trainer.model if model is None else model
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    per_seq = (logp * batch["completion_mask"][:, 1:]).sum(1)
    return per_seq.chunk(2)[0]


@pytest.mark.slow
def test_idpop_at_lambda_zero_equals_trl_sigmoid_dpo(tiny, examples, tmp_path):
    model, tok = tiny
    dpo = _trainer(
        DPOTrainer,
        model,
        tok,
        [{k: v for k, v in r.items() if k != MU_COLUMN} for r in _records(examples, tok, 0.0)],
        tmp_path / "dpo",
    )
    idp = _trainer(
        IDPOPTrainer, model, tok, [dict(r, mu=0.0) for r in _records(examples, tok, 0.0)], tmp_path / "idp"
    )
    b_dpo, b_idp = _batch(dpo), _batch(idp)
    assert MU_COLUMN in b_idp and MU_COLUMN not in b_dpo
    assert torch.equal(b_dpo["input_ids"], b_idp["input_ids"])
    loss_dpo = dpo.compute_loss(dpo.model, dict(b_dpo))
    loss_idp = idp.compute_loss(idp.model, dict(b_idp))
    assert loss_dpo.item() != pytest.approx(
        np.log(2), abs=1e-4
    )  # the policy really differs from the reference
    assert torch.equal(loss_dpo, loss_idp)
    loss_dpo.backward()
    loss_idp.backward()
    g_dpo, g_idp = _grads(dpo), _grads(idp)
    assert g_dpo.keys() == g_idp.keys() and all(torch.equal(g_dpo[k], g_idp[k]) for k in g_dpo)


@pytest.mark.slow
def test_idpop_adds_exactly_the_penalty(tiny, examples, tmp_path):
    model, tok = tiny
    records = _records(examples, tok, 1.0)
    dpo = _trainer(
        DPOTrainer,
        model,
        tok,
        [{k: v for k, v in r.items() if k != MU_COLUMN} for r in records],
        tmp_path / "dpo",
    )
    idp = _trainer(IDPOPTrainer, model, tok, records, tmp_path / "idp")
    batch = _batch(idp)
    mu = batch[MU_COLUMN].clone()
    pol_c = _policy_chosen_logps(idp, batch)
    ref_c = batch["ref_chosen_logps"]
    expected = (mu * torch.relu(ref_c - pol_c)).mean()
    with torch.no_grad():
        gap = idp.compute_loss(idp.model, dict(batch)) - dpo.compute_loss(dpo.model, _batch(dpo))
    assert gap.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)
    # the trainer must keep the column through unused-column removal (a silent drop would make IDPOP = DPO)
    assert MU_COLUMN in next(iter(idp.get_train_dataloader()))
    assert MU_COLUMN in idp._signature_columns


@pytest.mark.slow
def test_idpop_penalty_uses_an_explicit_reference_model(tiny, examples, tmp_path):
    """``ref_model=...`` with ``precompute_ref_log_probs=False``: the penalty's π_ref is that model, not the
    policy (which would make the penalty 0 for ever)."""
    model, tok = tiny
    records = _records(examples, tok, 1.0)
    ref = fresh_copy(model).eval()  # the base; the policy is the base + a random LoRA (see _trainer)
    kw = {"ref_model": ref, "precompute": False}
    dpo = _trainer(
        DPOTrainer,
        model,
        tok,
        [{k: v for k, v in r.items() if k != MU_COLUMN} for r in records],
        tmp_path / "dpo",
        **kw,
    )
    idp = _trainer(IDPOPTrainer, model, tok, records, tmp_path / "idp", **kw)
    batch = _batch(idp)
    assert "ref_chosen_logps" not in batch
    ref_c = _policy_chosen_logps(idp, batch, model=ref)
    expected = (batch[MU_COLUMN] * torch.relu(ref_c - _policy_chosen_logps(idp, batch))).mean()
    assert expected.item() > 0.01  # the configuration can show a penalty at all (the old bug gave 0)
    with torch.no_grad():
        gap = idp.compute_loss(idp.model, dict(batch)) - dpo.compute_loss(dpo.model, _batch(dpo))
    assert gap.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)


@pytest.mark.slow
def test_pipeline_smoke(tiny, examples):
    """SFT (LoRA, TRL) → two sampled answers per prompt → pairs → IDPOP; merged models come back plain."""
    model, tok = tiny
    train, test = examples
    before = copy.deepcopy(model.state_dict())
    sft = train_sft(
        model, tok, train, SFTRunConfig(max_steps=3, batch_size=4, logging_steps=1, learning_rate=1e-2)
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the base is untouched
    assert "forward" not in vars(sft.model) and not hasattr(sft.model, "peft_config")
    assert len(sft.history) == 3
    samples = generate_answers(
        sft.model,
        tok,
        test,
        GenerationSettings(do_sample=True, num_return_sequences=2, max_new_tokens=4, progress=False),
    )
    assert len(samples) == len(test) and all(len(s) == 2 for s in samples)
    fake = [[f"{e.target + 0.3:.1f}", f"{e.target - 1.4:.1f}"] for e in test]  # keep the step deterministic
    pairs, _ = build_preference_pairs(test, fake)
    out = train_preference(
        sft.model, tok, pairs, "idpop", PreferenceRunConfig(max_steps=2, batch_size=4, logging_steps=1)
    )
    assert "forward" not in vars(out.model) and any("idpop/penalty" in h for h in out.history)


def test_split_pairs_holds_out_whole_users(examples):
    _, test = examples
    fake = [[f"{e.target + 0.3:.1f}", f"{e.target - 1.4:.1f}"] for e in test]
    pairs, _ = build_preference_pairs(test, fake)
    train, held = split_pairs(pairs, held_out=0.25, seed=0)
    assert len(train) + len(held) == len(pairs) and held and train
    assert not {p.example.uid for p in train} & {p.example.uid for p in held}
    assert split_pairs(pairs, 0.25, 0)[1] == held  # seeded
    with pytest.raises(ValueError):
        split_pairs(pairs[:1], 0.5)


@pytest.mark.parametrize("method", ["dpo", "idpop"])
def test_held_out_pairs_are_evaluated_during_alignment(tiny, examples, method):
    """The held-out curve starts at the reference (margin exactly 0: the fresh LoRA is a no-op) and has a row
    at every eval step; with a high learning rate on pairs that all prefer the same kind of answer, the
    margin moves."""
    model, tok = tiny
    _, test = examples
    fake = [[f"{e.target + 0.3:.1f}", f"{e.target - 1.4:.1f}"] for e in test]
    pairs, _ = build_preference_pairs(test, fake)
    train, held = split_pairs(pairs, held_out=0.25, seed=0)
    out = train_preference(
        model,
        tok,
        train,
        method,
        PreferenceRunConfig(max_steps=4, batch_size=4, logging_steps=2, learning_rate=5e-2),
        eval_pairs=held,
    )
    curve = eval_curve(out.history)
    assert list(curve["step"]) == [0, 2, 4]
    assert curve["margin"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert curve["margin"].iloc[-1] != pytest.approx(0.0, abs=1e-4)
    assert curve["accuracy"].between(0, 1).all() and curve["chosen_logp"].notna().all()
    if curve["margin"].iloc[0] == 0:  # every pair a tie at the reference: chance, not TRL's "all wrong"
        assert curve["accuracy"].iloc[0] == 0.5


def test_eval_curve_reads_the_step_0_tie_as_chance():
    tie = {"step": 0, "eval_rewards/margins": 0.0, "eval_rewards/accuracies": 0.0, "eval_loss": 0.69}
    moved = {"step": 8, "eval_rewards/margins": 0.0, "eval_rewards/accuracies": 0.0, "eval_loss": 0.7}
    curve = eval_curve([tie, moved, {"step": 8, "loss": 0.5}])
    assert list(curve["accuracy"]) == [0.5, 0.0]  # only the reference's exact tie; a later 0 stays 0
