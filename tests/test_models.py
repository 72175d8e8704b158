"""The course's base model: tokenizer, tiny Qwen2 / Llama, pre-training, build → save → load (fp32 and NF4 on CPU).

A seeded corpus of templated Chinese sentences (with emoji and punctuation) built here, vocab 500, hidden 64.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from socialalign_lib.models import (
    CHATML_TEMPLATE,
    EOS_TOKEN,
    IM_END,
    IM_START,
    ModelNotFoundError,
    PretrainConfig,
    TinyModelConfig,
    build_base_model,
    build_tiny_model,
    cosine_lr,
    load_base_model,
    pack_texts,
    pretrain,
    train_tokenizer,
)

VOCAB = 500
TINY = TinyModelConfig(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    max_position_embeddings=256,
)
FAST = PretrainConfig(
    block_size=64, batch_size=8, max_steps=30, learning_rate=5e-3, warmup_steps=3, progress=False
)

CITIES = ["北京", "上海", "厦门", "重庆", "西安", "成都", "武汉", "杭州"]
SUBJECTS = ["地铁新线", "校园午餐", "见义勇为", "医院改革", "房价调控", "高考政策", "垃圾分类", "夜市经济"]
VERBS = ["引发热议", "正式开通", "出台新方案", "问题突出", "受到关注", "效果明显"]
REACTIONS = ["太好了", "真的服了", "支持一下", "等官方通报吧", "希望有个说法", "为他们点赞", "普通人太难了"]
TAILS = ["！", "！！", "。", "…", "？", "😄", "😭😭", "👍", "[怒]", "#今日话题#", "❤️"]


def make_corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Weibo-like sentences: news ("城市+话题+动词。据悉，…") and replies with emoji and punctuation."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        city, subj, verb = rng.choice(CITIES), rng.choice(SUBJECTS), rng.choice(VERBS)
        if i % 3 == 0:
            out.append(f"{city}{subj}{verb}。据悉，{subj}相关话题阅读量已超过{rng.randint(2, 99)}万。")
        else:
            out.append(f"{rng.choice(REACTIONS)}，{city}的{subj}{rng.choice(REACTIONS)}{rng.choice(TAILS)}")
    return out


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return make_corpus()


@pytest.fixture(scope="module")
def tok(corpus):
    return train_tokenizer(corpus, VOCAB)


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory) -> Path:
    return build_base_model(corpus, tmp_path_factory.mktemp("m") / "tiny", VOCAB, TINY, FAST)


def _decode(tok, ids) -> str:
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


# ---------------------------------------------------------------------------------------------- tokenizer

ROUND_TRIP = [
    "北京地铁新线正式开通！！😄😄 真的服了…",
    "#厦门见义勇为# 等官方通报吧？[怒] ❤️👍🏽",
    "魑魅魍魉 不在语料里的字，也能还原。",
    "Hello, Weibo 2024年3月5日 12:30\n第二行\t制表符  两个空格",
    "全角：（括号）「引号」《书名》——破折号、顿号；分号",
    " 前导空格和结尾空格 ",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip_is_exact(tok, text):
    assert _decode(tok, tok(text)["input_ids"]) == text


def test_common_chinese_characters_are_single_tokens(tok, corpus):
    counts = Counter(ch for t in corpus for ch in t if "\u4e00" <= ch <= "\u9fff")
    common = [ch for ch, _ in counts.most_common(40)]
    assert all(len(tok(ch, add_special_tokens=False)["input_ids"]) == 1 for ch in common)
    for word in ["垃圾分类", "见义勇为", "相关话题", "阅读量", "太好了"]:  # frequent words become one token
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word


def test_no_token_straddles_two_characters(tok):
    """Every token decodes to whole characters, except single bytes and byte prefixes of one character."""
    from socialalign_lib.models import bytes_to_unicode

    u2b = {c: b for b, c in bytes_to_unicode().items()}
    for token in tok.get_vocab():
        if token in (EOS_TOKEN, IM_START, IM_END):
            continue
        raw = bytes(u2b[c] for c in token)
        if len(raw) == 1:  # the 256 base bytes
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:  # allowed only as the prefix of one multi-byte character
            assert raw[0] >= 0xC0 and all(0x80 <= b < 0xC0 for b in raw[1:]), token


@pytest.mark.parametrize("text", ROUND_TRIP[:4])
def test_offsets_map_back_to_the_characters(tok, text):
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    covered = set()
    for tid, (s, e) in zip(enc["input_ids"], enc["offset_mapping"]):
        piece = _decode(tok, [tid])
        if "\ufffd" not in piece:  # whole characters: the span is exactly the token's text
            assert text[s:e] == piece
        else:  # a byte of a rare character: the span is that one character
            assert e - s == 1
        covered.update(range(s, e))
    assert covered == set(range(len(text)))


def test_character_span_to_token_span(tok):
    """The use later code makes of offsets: the tokens overlapping a character span decode to text containing it."""
    text = "用户：小明\n新闻：北京地铁新线正式开通。据悉，地铁新线受到关注！\n回复："
    start = text.index("北京")
    end = text.index("\n回复")
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    toks = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if s < end and e > start]
    span_text = _decode(tok, enc["input_ids"][toks[0] : toks[-1] + 1])
    assert text[start:end] in span_text and len(span_text) <= end - start + 2


def test_special_tokens_and_padding(tok, corpus):
    assert tok.eos_token == tok.pad_token == EOS_TOKEN and tok.bos_token is None
    assert [tok.convert_tokens_to_ids(t) for t in (EOS_TOKEN, IM_START, IM_END)] == [0, 1, 2]
    ids = tok(f"{IM_START}user\n你好{IM_END}", add_special_tokens=False)["input_ids"]
    assert ids[0] == 1 and ids[-1] == 2  # never split, no BOS added
    assert train_tokenizer(corpus[:50], 300, padding_side="left").padding_side == "left"
    with pytest.raises(ValueError, match="padding_side"):
        train_tokenizer(corpus[:50], 300, padding_side="middle")


def test_chat_template_is_chatml(tok):
    msgs = [{"role": "system", "content": "你是微博用户"}, {"role": "user", "content": "新闻：地铁开通"}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\n你是微博用户<|im_end|>\n<|im_start|>user\n新闻：地铁开通<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": "太好了！"}], tokenize=False)
    assert full == prompt + "太好了！<|im_end|>\n"
    out = tok.apply_chat_template(
        msgs + [{"role": "assistant", "content": "太好了！"}],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    answer = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert _decode(tok, answer) == "太好了！<|im_end|>"


def test_tokenizer_training_is_deterministic(tok, corpus):
    again = train_tokenizer(corpus, VOCAB)
    assert again.backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()
    assert len(tok) == VOCAB


# ---------------------------------------------------------------------------------------------- model


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_build_tiny_model(tok, arch):
    state = torch.get_rng_state()
    model = build_tiny_model(tok, TINY, arch=arch, seed=1)
    assert torch.equal(state, torch.get_rng_state())  # seeded inside fork_rng
    assert type(model).__name__ == {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}[arch]
    assert model.config.vocab_size == len(tok) and model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    gc = model.generation_config
    assert gc.pad_token_id == 0 and gc.eos_token_id == [2, 0]  # stop at <|im_end|> or <|endoftext|>
    ids = tok(["北京地铁", "上海的校园午餐太好了"], return_tensors="pt", padding=True)
    assert model(**ids).logits.shape == (2, ids["input_ids"].shape[1], len(tok))
    again = build_tiny_model(tok, TinyModelConfig(**{**TINY.__dict__, "arch": arch}), seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    with pytest.raises(ValueError, match="arch"):
        build_tiny_model(tok, TINY, arch="gpt2")


def test_pack_texts_and_schedule(tok):
    blocks = pack_texts(tok, ["北京", "上海地铁"], 2)
    assert blocks.dtype == torch.long and blocks.shape[1] == 2
    assert (blocks == tok.eos_token_id).sum() >= 1
    with pytest.raises(ValueError, match="block"):
        pack_texts(tok, ["北"], 64)
    cfg = PretrainConfig(max_steps=100, warmup_steps=10, learning_rate=1.0, min_lr_ratio=0.1)
    assert cosine_lr(0, cfg) == pytest.approx(0.1) and cosine_lr(9, cfg) == pytest.approx(1.0)
    assert cosine_lr(99, cfg) == pytest.approx(0.1, abs=1e-3) and cosine_lr(55, cfg) == pytest.approx(0.55)


@pytest.mark.slow
def test_pretrain_reduces_loss(built):
    info = json.loads((built / "build_info.json").read_text(encoding="utf-8"))
    assert info["steps"] == FAST.max_steps
    assert info["final_loss"] < 0.75 * info["first_loss"]  # measured 6.24 → 3.42 in 30 steps


@pytest.mark.slow
def test_pretrain_returns_one_loss_per_step(tok, corpus):
    model = build_tiny_model(tok, TINY)
    losses = pretrain(
        model, tok, corpus, PretrainConfig(block_size=32, batch_size=4, max_steps=4, progress=False)
    )
    assert len(losses) == 4 and all(isinstance(x, float) for x in losses)
    assert not model.training


# ---------------------------------------------------------------------------------------------- build, save, load


@pytest.mark.slow
def test_build_writes_a_complete_folder_atomically(built):
    names = {p.name for p in built.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        "build_info.json",
    } <= names
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".")]  # no temp folders left
    info = json.loads((built / "build_info.json").read_text(encoding="utf-8"))
    assert info["vocab_size"] == VOCAB and info["seed"] == FAST.seed and info["model"]["hidden_size"] == 64
    assert "socialalign-tiny" in (built / "README.md").read_text(encoding="utf-8")
    with pytest.raises(FileExistsError):
        build_base_model(["北京"], built)


@pytest.mark.slow
def test_same_seed_same_model(built, corpus, tmp_path):
    again = build_base_model(corpus, tmp_path / "again", VOCAB, TINY, FAST)
    assert (again / "tokenizer.json").read_bytes() == (built / "tokenizer.json").read_bytes()
    assert (again / "model.safetensors").read_bytes() == (built / "model.safetensors").read_bytes()
    other = build_base_model(
        corpus,
        tmp_path / "again",
        VOCAB,
        TINY,
        PretrainConfig(**{**FAST.__dict__, "seed": 1}),
        overwrite=True,
    )
    assert (other / "model.safetensors").read_bytes() != (built / "model.safetensors").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]


@pytest.mark.slow
def test_load_gives_identical_logits_and_tokens(built, tok):
    from safetensors.torch import load_file

    model, loaded = load_base_model(built, device="cpu", padding_side="left")
    assert loaded.padding_side == "left" and loaded.pad_token == EOS_TOKEN
    assert model.generation_config.eos_token_id == [2, 0] and not model.training
    for text in ROUND_TRIP:  # the reloaded tokenizer (a rebuilt Qwen2Tokenizer) encodes exactly as trained
        assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.chat_template == CHATML_TEMPLATE
    reference = build_tiny_model(tok, TINY)
    reference.load_state_dict(load_file(built / "model.safetensors"), strict=False)
    reference.tie_weights()
    ids = loaded(ROUND_TRIP[:3], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, reference(**ids).logits)


def test_llama_round_trip_through_load_base_model(tok, tmp_path):
    """A Llama folder reloads as ``TokenizersBackend`` (not a rebuilt ``LlamaTokenizer``): same tokens, same logits."""
    model = build_tiny_model(tok, TINY, arch="llama", seed=3)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded_model, loaded = load_base_model(tmp_path, device="cpu")
    assert type(loaded_model).__name__ == "LlamaForCausalLM"
    ids = tok(ROUND_TRIP, return_tensors="pt", padding=True)
    assert (
        loaded(ROUND_TRIP, return_tensors="pt", padding=True)["input_ids"].tolist()
        == ids["input_ids"].tolist()
    )
    with torch.no_grad():
        assert torch.equal(loaded_model(**ids).logits, model(**ids).logits)


@pytest.mark.slow
def test_4bit_load_on_cpu_is_close_to_fp32(built):
    """NF4 with double quantisation on CPU (bitsandbytes >= 0.50). Measured on this model (bnb 0.50.2): mean
    |Δlogit| = 1.7 % of the mean |logit| (1.86), max 24 %, argmax agreement 98 %; the tolerances leave ~2-3×."""
    from bitsandbytes.nn import Linear4bit

    fp32, tok = load_base_model(built, device="cpu")
    q4, _ = load_base_model(built, device="cpu", load_in_4bit=True)
    quantised = [n for n, m in q4.named_modules() if isinstance(m, Linear4bit)]
    assert len(quantised) == 7 * TINY.num_hidden_layers  # q k v o gate up down in every layer
    assert not isinstance(q4.lm_head, Linear4bit)
    assert q4.config.quantization_config.bnb_4bit_quant_type == "nf4"
    ids = tok(ROUND_TRIP[:3] + make_corpus(5, seed=9), return_tensors="pt", padding=True)
    mask = ids["attention_mask"].bool()
    with torch.no_grad():
        a, b = fp32(**ids).logits[mask], q4(**ids).logits[mask]
    scale = a.abs().mean()
    assert (a - b).abs().mean() < 0.05 * scale
    assert (a - b).abs().max() < 0.6 * scale
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9
    assert not torch.equal(a, b)  # really quantised


def test_missing_model_names_the_embedded_default(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE.*socialalign-tiny"):
        load_base_model(tmp_path / "nothing-here")
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        load_base_model("someone/not-a-cached-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_base_model(tmp_path / "empty")


def test_python_m_models_runs_the_build_cli():
    """``make model`` runs ``python -m socialalign_lib.models --rebuild``: the package keeps a ``__main__``."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "socialalign_lib.models", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "--rebuild" in done.stdout and "--no-background" in done.stdout
