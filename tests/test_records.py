"""SocialAlign records: the official template, spans by construction, token spans through a chat template."""

from __future__ import annotations

import pytest

from socialalign_lib.build.persona.statistical import StatisticalPersonaBackend
from socialalign_lib.build.records.chat import ChatConfig, build_chat_example, chat_prompt, token_spans
from socialalign_lib.build.records.dataset import build_dataset, export_jsonl
from socialalign_lib.build.records.template import (
    SPLITS,
    SYSTEM_PROMPT,
    VARIANTS,
    RecordError,
    render_instruction,
    render_record,
)
from socialalign_lib.data.schema import Persona, Post

# The official templates (docs/formats.md#socialalign-alpaca-json, organize_alphca_dataset.py), verbatim, for
# an independent check.
OFFICIAL = {
    "full": """
你的用户名为{user_name}, 以下是你的五条历史博文:␣
1. {history_1}
2. {history_2}
3. {history_3}
4. {history_4}
5. {history_5}
以下是你的用户画像：
{user_persona}
现在你看到了一则新闻:␣
{news}
关于这个新闻的hashtag #{topic}# 登上了微博热搜，请发一条关于hashtag #{topic}# 的微博，请注意：
    - 可以参考你的个人信息、历史博文、用户画像和这则新闻，用自己的风格和立场发表观点
    - 这条微博的长度应与你的历史博文相似
    - 不要强行参考历史信息
    - 仅输出你发表的微博内容
""",
    "without_persona": """
你的用户名为{user_name}, 以下是你的五条历史博文:␣
1. {history_1}
2. {history_2}
3. {history_3}
4. {history_4}
5. {history_5}
现在你看到了一则新闻:␣
{news}
关于这个新闻的hashtag #{topic}# 登上了微博热搜，请发一条关于hashtag #{topic}# 的微博，请注意：
    - 可以参考你的个人信息、历史博文和这则新闻，用自己的风格和立场发表观点
    - 这条微博的长度应与你的历史博文相似
    - 不要强行参考历史信息
    - 仅输出你发表的微博内容
""",
    "without_history": """
你的用户名为{user_name}, 以下是你的用户画像：
{user_persona}
现在你看到了一则新闻:␣
{news}
关于这个新闻的hashtag #{topic}# 登上了微博热搜，请发一条关于hashtag #{topic}# 的微博，请注意：
    - 可以参考你的个人信息、用户画像和这则新闻，用自己的风格和立场发表观点
    - 这条微博的长度应与你的历史博文相似
    - 不要强行参考历史信息
    - 仅输出你发表的微博内容
""",
}
# "␣" marks the official trailing spaces after "历史博文:" and "新闻:" (kept visible, and lint-clean)
OFFICIAL = {k: v.replace("␣", " ") for k, v in OFFICIAL.items()}

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="module")
def world(tiny_world):
    return tiny_world


@pytest.fixture(scope="module")
def personas(world):
    backend = StatisticalPersonaBackend()
    return {u.user_id: backend.extract(u.screen_name, u.history) for u in world.users}


@pytest.fixture(scope="module")
def dataset(world, personas):
    from socialalign_lib import retrieval

    return build_dataset(world, retrieval.RetrievalConfig(k=5), personas, variants=VARIANTS)


@pytest.fixture(scope="module")
def all_records(world, personas):
    """Every record of the tiny world in all variants: from the dataset (BM25 history) when retrieval is
    available, else rendered directly with each user's first five posts — the span checks must never skip."""
    try:
        from socialalign_lib.build.retrieval import RetrievalConfig
    except ImportError:
        return [
            render_record(c, c.user.history[:5], personas[c.user.user_id], v)
            for c in world.cases()
            for v in VARIANTS
        ]
    ds = build_dataset(world, RetrievalConfig(k=5), personas, variants=VARIANTS)
    return [r for split in ds.values() for r in split]


def _world_texts(world) -> list[str]:
    texts = [t.news for t in world.topics] + [r.post.text for r in world.responses]
    texts += [p.full_text for u in world.users for p in u.history] + [u.screen_name for u in world.users]
    return texts + [SYSTEM_PROMPT] + [v for v in OFFICIAL.values()]


@pytest.fixture(scope="module")
def tokenizer(world):
    """A fast tokenizer trained on the world's text: ``models.train_tokenizer`` when available, else a
    byte-level BPE trained here. Either way it gets the ChatML template of Qwen2.5 and its special tokens."""
    try:
        from socialalign_lib.models import train_tokenizer
    except ImportError:
        train_tokenizer = None
    if train_tokenizer is not None:
        tok = train_tokenizer(_world_texts(world), 2000)
        tok.add_special_tokens(
            {"additional_special_tokens": [s for s in SPECIALS if s not in tok.get_vocab()]}
        )
    else:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast

        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.decoder = decoders.ByteLevel()
        tk.train_from_iterator(
            _world_texts(world),
            trainers.BpeTrainer(
                vocab_size=2000, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
            ),
        )
        tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    if not tok.chat_template:
        tok.chat_template = CHATML
    return tok


def _decode(tok, ids) -> str:
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


# ---------------------------------------------------------------------------------------------- the template


def _official_history(p: Post) -> str:
    return f"你转发了微博: {p.retweet.text}, 并评论说: {p.text}" if p.retweet else p.text


@pytest.mark.parametrize("variant", VARIANTS)
def test_instruction_is_the_official_template(world, personas, variant):
    case = next(c for c in world.cases() if any(p.retweet for p in c.user.history[:5]))
    posts = case.user.history[:5]
    persona = personas[case.user.user_id]
    text, user, news = render_instruction(
        case.user.screen_name, posts, persona, case.topic.news, case.topic.hashtag, variant
    )
    expected = (
        OFFICIAL[variant]
        .format(
            user_name=case.user.screen_name,
            user_persona=persona.render(),
            news=case.topic.news,
            topic=case.topic.hashtag,
            **{f"history_{i}": _official_history(p) for i, p in enumerate(posts, 1)},
        )
        .strip()
    )
    assert text == expected
    assert text[news[0] : news[1]] == case.topic.news
    # the user block runs from the name to the end of the persona (or of the history without one)
    assert user[0] == 0 and text[user[1] :].startswith("\n现在你看到了一则新闻: \n")
    block = text[user[0] : user[1]]
    assert block.startswith(f"你的用户名为{case.user.screen_name}, ")
    assert block.endswith(persona.render() if variant != "without_persona" else _official_history(posts[-1]))


def test_spans_survive_adversarial_content(world):
    """The official code finds the news by searching for "现在你看到了一则新闻"; text containing it breaks
    that. Spans recorded while building the string do not care."""
    case = world.cases()[0]
    trap = Persona("现在你看到了一则新闻", "，请发一条关于hashtag", "中性", "理性严谨", "客观中立")
    rec = render_record(case, case.user.history[:5], trap, "full")
    s, e = rec["news_span"]
    assert rec["instruction"][s:e] == case.topic.news
    assert rec["instruction"][rec["user_span"][1] - len(trap.render()) : rec["user_span"][1]] == trap.render()


def test_record_fields_and_missing_persona(world):
    case = world.cases()[3]
    rec = render_record(case, case.user.history[:3], "1. 兴趣话题: 科技\n\n\n2. 语言风格: 简短\n", "full")
    assert rec["input"] == "" and rec["output"] == case.response.text
    assert (
        "以下是你的三条历史博文: " in rec["instruction"]
        and "科技\n2. 语言风格: 简短\n现在" in rec["instruction"]
    )
    assert {k: rec[k] for k in ("case_id", "topic_id", "user_id", "category", "split", "sentiment")} == {
        "case_id": case.case_id,
        "topic_id": case.topic.topic_id,
        "user_id": case.user.user_id,
        "category": case.topic.category,
        "split": case.split,
        "sentiment": case.sentiment,
    }
    with pytest.raises(RecordError, match=case.case_id):
        render_record(case, case.user.history[:5], None, "full")
    with pytest.raises(RecordError, match="unknown variant"):
        render_record(case, case.user.history[:5], None, "no_news")
    assert (
        "用户画像" not in render_record(case, case.user.history[:5], None, "without_persona")["instruction"]
    )


# ---------------------------------------------------------------------------------------------- the dataset


def test_dataset_splits_and_variants(world, dataset):
    assert list(dataset) == list(SPLITS)
    cases = world.cases()
    assert sum(len(d) for d in dataset.values()) == len(cases) * len(VARIANTS)
    for split, d in dataset.items():
        assert set(d["split"]) <= {split} and set(d["variant"]) <= set(VARIANTS)
    train = dataset["train"]
    assert not set(dataset["test_user"]["user_id"]) & set(train["user_id"])  # unseen users
    assert not set(dataset["test_topic"]["topic_id"]) & set(train["topic_id"])  # unseen topics
    assert not set(dataset["test_both"]["user_id"]) & set(train["user_id"])
    for rec in train:
        n_hist = len(rec["history_ids"])
        if rec["variant"] == "without_history":
            assert n_hist == 0 and "历史博文:" not in rec["instruction"].split("\n")[0]
        else:
            assert n_hist == 5 and "以下是你的五条历史博文: \n1. " in rec["instruction"]
        assert rec["output"] and rec["instruction"][slice(*rec["news_span"])] in {
            t.news for t in world.topics
        }
    by_id = {c.case_id: c for c in cases}
    hist = {p.post_id for c in cases for p in c.user.history}
    for rec in dataset["test_topic"]:
        assert by_id[rec["case_id"]].response.post_id not in rec["history_ids"]
        assert set(rec["history_ids"]) <= hist


def test_export_jsonl_round_trips(dataset, tmp_path):
    from socialalign_lib.data.read import read_jsonl

    paths = export_jsonl(dataset, tmp_path)
    assert sorted(paths) == sorted(SPLITS)
    for split, path in paths.items():
        assert list(read_jsonl(path)) == dataset[split].to_list()


# ---------------------------------------------------------------------------------------------- tokens


def test_token_spans_of_every_record_decode_to_the_user_block_and_the_news(world, all_records, tokenizer):
    """For EVERY record of the tiny world (3 variants), in the raw instruction and in the chat prompt."""
    n = 0
    for rec in all_records:
        text, user, news = rec["instruction"], rec["user_span"], rec["news_span"]
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        tu, tn = token_spans(tokenizer, text, [user, news])
        assert _decode(tokenizer, ids[tu[0] : tu[1]]) == text[user[0] : user[1]]
        assert _decode(tokenizer, ids[tn[0] : tn[1]]) == text[news[0] : news[1]]

        ex = build_chat_example(tokenizer, rec)
        ids, labels, p = ex["input_ids"], ex["labels"], ex["prompt_length"]
        assert _decode(tokenizer, ids[slice(*ex["user_span"])]) == text[user[0] : user[1]], rec["case_id"]
        assert _decode(tokenizer, ids[slice(*ex["news_span"])]) == text[news[0] : news[1]], rec["case_id"]
        assert ex["user_span"][1] <= ex["news_span"][0] < ex["news_span"][1] <= p
        assert labels[:p] == [-100] * p and labels[p:] == ids[p:] and len(ids) == len(ex["attention_mask"])
        assert _decode(tokenizer, labels[p:]) == rec["output"] + "<|im_end|>\n"
        assert _decode(tokenizer, ids[:p]).startswith("<|im_start|>system\n你是一个微博用户。<|im_end|>")
        n += 1
    assert n == len(world.cases()) * len(VARIANTS) > 600


def test_chat_offsets_by_construction(all_records, tokenizer):
    rec = all_records[0]
    prompt, off, off_sys = chat_prompt(tokenizer, rec["instruction"])
    assert prompt == tokenizer.apply_chat_template(
        [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": rec["instruction"]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert prompt[off : off + len(rec["instruction"])] == rec["instruction"]
    assert prompt[off_sys : off_sys + len(SYSTEM_PROMPT)] == SYSTEM_PROMPT
    # the official PAC-LoRA user mask also covers the system prompt: available as an option
    ex = build_chat_example(tokenizer, rec, ChatConfig(user_span_includes_system=True))
    assert _decode(tokenizer, ex["input_ids"][slice(*ex["user_span"])]).startswith(SYSTEM_PROMPT)
    # a template that rewrites message text cannot be trusted with spans: refuse loudly
    old = tokenizer.chat_template
    try:
        tokenizer.chat_template = old.replace("m['content']", "m['content'] | replace('新闻', 'news')")
        with pytest.raises(ValueError, match="verbatim"):
            build_chat_example(tokenizer, rec)
        tokenizer.chat_template = None  # plain fallback for template-less toy tokenizers
        ex = build_chat_example(tokenizer, rec)
        assert (
            _decode(tokenizer, ex["input_ids"][slice(*ex["news_span"])])
            == rec["instruction"][slice(*rec["news_span"])]
        )
        assert _decode(tokenizer, ex["labels"][ex["prompt_length"] :]) == rec["output"] + tokenizer.eos_token
    finally:
        tokenizer.chat_template = old


def test_max_length_cuts_the_response_never_the_prompt(all_records, tokenizer):
    rec = all_records[0]
    full = build_chat_example(tokenizer, rec)
    p = full["prompt_length"]
    cut = build_chat_example(tokenizer, rec, ChatConfig(max_length=p + 2))
    assert len(cut["input_ids"]) == p + 2 and cut["input_ids"] == full["input_ids"][: p + 2]
    with pytest.raises(RecordError, match="max_length"):
        build_chat_example(tokenizer, rec, ChatConfig(max_length=p - 1))


def test_history_filter_limits_what_retrieval_may_choose(world, personas):
    from socialalign_lib import retrieval
    from socialalign_lib.build.records.dataset import build_records

    cases = world.cases()[:20]
    no_junk = build_records(
        cases,
        retrieval.RetrievalConfig(k=5),
        personas,
        ("full",),
        history_filter=lambda u: [p for p in u.history if "【" not in p.text],
    )
    junk_ids = {p.post_id for c in cases for p in c.user.history if "【" in p.text}
    assert all(not set(r["history_ids"]) & junk_ids for r in no_junk)
    assert all(len(r["history_ids"]) == 5 for r in no_junk)
    # a filter that leaves a user nothing skips that user's cases (upstream: fewer than 10 posts left)
    first = cases[0].user.user_id
    kept = build_records(
        cases,
        retrieval.RetrievalConfig(k=5),
        personas,
        ("full",),
        history_filter=lambda u: [] if u.user_id == first else list(u.history),
    )
    assert {r["case_id"] for r in kept} == {c.case_id for c in cases if c.user.user_id != first}


# ------------------------------------------------------------------------------------------------ official records

MULTITOPIC = (
    __import__("pathlib").Path(__file__).parent / "fixtures" / "socialalign" / "SocialWeibo_multitopic.json"
)


def test_official_records_round_trip_identically_through_build_records():
    """One user (阿明) replies to two topics, in every variant and out of order: each record comes back identical.

    Pins three bugs of rebuilding from the alpaca JSON: a history cached per user id (阿明's second topic got the
    first case's posts, or none after a without_history record), the persona re-worded (情感倾向 → 情感基调,
    "：" → ": ", the final "。" dropped), and the posts re-ranked by a new BM25."""
    from socialalign_lib.build.records.dataset import build_records
    from socialalign_lib.data.loaders.socialalign import load_socialalign_alpaca, load_socialalign_cases

    source = load_socialalign_alpaca(MULTITOPIC)
    cases = load_socialalign_cases(MULTITOPIC)
    assert [c.user.user_id for c in cases].count("name:阿明") == 4  # the fixture is what the test claims
    assert len({c.topic.topic_id for c in cases if c.user.screen_name == "阿明"}) == 2
    records = build_records(cases, variants=VARIANTS)
    by_key = {(r["case_id"], r["variant"]): r for r in records}
    for case, src in zip(cases, source, strict=True):
        rec = by_key[case.case_id, src.variant]
        assert rec["instruction"] == src.instruction, case.case_id
        assert tuple(rec["user_span"]) == src.user_span and tuple(rec["news_span"]) == src.news_span
        assert rec["output"] == src.output
    # a variant derived from a full record is the official template filled with the same parts: the file's own
    # without_persona record of the same (user, topic)
    full_oil = next(
        c
        for c, s in zip(cases, source)
        if s.user_name == "阿明" and s.hashtag == "油价今晚上调" and s.variant == "full"
    )
    wp_oil = next(
        s
        for s in source
        if s.user_name == "阿明" and s.hashtag == "油价今晚上调" and s.variant == "without_persona"
    )
    assert by_key[full_oil.case_id, "without_persona"]["instruction"] == wp_oil.instruction
    # what a record lacks is not invented: no "full" record from a without_history or a without_persona record
    assert {v for (cid, v) in by_key if cid == cases[0].case_id} == {"without_history"}
    assert {v for (cid, v) in by_key if cid == cases[4].case_id} == {"without_persona"}


def test_official_case_parts_survive_the_case_jsonl(tmp_path):
    from socialalign_lib.build.records.dataset import build_records
    from socialalign_lib.data.loaders.socialalign import load_socialalign_cases
    from socialalign_lib.data.validate import load_cases
    from socialalign_lib.data.write import write_jsonl

    cases = load_socialalign_cases(MULTITOPIC)
    write_jsonl(tmp_path / "cases.jsonl", [c.to_dict() for c in cases])
    again = load_cases(tmp_path / "cases.jsonl", allow_empty_history=True)
    assert [c.record_parts for c in again] == [c.record_parts for c in cases]
    assert build_records(again, variants=VARIANTS) == build_records(cases, variants=VARIANTS)


def test_a_user_with_two_histories_is_not_served_from_a_cache(world, personas):
    """Two cases of one user id with different histories (as official records are): each gets its own posts."""
    import copy

    from socialalign_lib.build.records.dataset import build_records

    case = next(c for c in world.cases() if len(c.user.history) >= 6)
    other = copy.deepcopy(case)
    other.case_id += "-b"
    other.user.history = other.user.history[3:]
    first, second = build_records([case, other], persona_by_user=personas)
    assert set(second["history_ids"]) <= {p.post_id for p in other.user.history}
    assert first["history_ids"] != second["history_ids"]


def test_official_spans_are_the_official_codes_token_indices(all_records, tokenizer):
    """``spans="official"``: the official fine-tuning script's ``user_mask`` / ``news_mask``, computed here the way
    that script does (token counts of the prompt prefix before "现在你看到了一则新闻" and before
    "，请发一条关于hashtag"),
    for every record of the tiny world. Gate A then sees the hashtag sentence; gate B the system prompt."""
    n = 0
    for rec in all_records:
        ex = build_chat_example(tokenizer, rec, ChatConfig(spans="official"))
        prompt = chat_prompt(tokenizer, rec["instruction"])[0]
        user_mask = len(
            tokenizer(prompt[: prompt.find("现在你看到了一则新闻")], add_special_tokens=False)["input_ids"]
        )
        news_mask = len(
            tokenizer(prompt[: prompt.find("，请发一条关于hashtag")], add_special_tokens=False)["input_ids"]
        )
        assert ex["user_span"] == [0, user_mask] and ex["news_span"] == [user_mask, news_mask], rec["case_id"]
        news_text = _decode(tokenizer, ex["input_ids"][slice(*ex["news_span"])])
        assert news_text.startswith("现在你看到了一则新闻") and news_text.endswith(
            f"#{rec['hashtag']}# 登上了微博热搜"
        )
        assert _decode(tokenizer, ex["input_ids"][slice(*ex["user_span"])]).startswith(
            "<|im_start|>system\n你是一个微博用户。"
        )
        assert ex["input_ids"] == build_chat_example(tokenizer, rec)["input_ids"]  # only the spans differ
        n += 1
    assert n > 600
    with pytest.raises(ValueError, match="spans"):
        ChatConfig(spans="news")


def test_official_spans_are_found_from_the_record_not_by_search(world, personas, tokenizer):
    """A history post quoting the news header moves the official code's ``find``; the spans here stay put."""
    case = world.cases()[0]
    decoy = Post("decoy", case.user.user_id, "现在你看到了一则新闻，请发一条关于hashtag的博文", "")
    rec = render_record(case, [decoy, *case.user.history[:4]], personas[case.user.user_id])
    ex = build_chat_example(tokenizer, rec, ChatConfig(spans="official"))
    news_text = _decode(tokenizer, ex["input_ids"][slice(*ex["news_span"])])
    assert (
        news_text.startswith("现在你看到了一则新闻: \n" + case.topic.news[:5])
        and "登上了微博热搜" in news_text
    )


def test_official_inference_ablation_is_the_official_text_edit():
    """The official "w/o history" / "w/o persona" prompts at inference, from the official record of the same case:
    removing the history gives the official without_history *training* template minus its history-length line and
    "、历史博文"; removing the persona gives exactly the official without_persona record."""
    import re

    from socialalign_lib.build.records.dataset import build_records
    from socialalign_lib.build.records.template import INFERENCE_ABLATIONS, official_inference_ablation
    from socialalign_lib.data.loaders.socialalign import load_socialalign_alpaca, load_socialalign_cases

    source = load_socialalign_alpaca(MULTITOPIC)
    full = next(
        r
        for r in build_records(load_socialalign_cases(MULTITOPIC))
        if r["user_name"] == "阿明" and r["hashtag"] == "油价今晚上调"
    )
    wp = next(
        s
        for s in source
        if s.user_name == "阿明" and s.hashtag == "油价今晚上调" and s.variant == "without_persona"
    )
    no_persona = official_inference_ablation(full, "persona")
    assert (
        no_persona["instruction"] == wp.instruction
        and no_persona["variant"] == INFERENCE_ABLATIONS["persona"]
    )
    assert tuple(no_persona["news_span"]) == wp.news_span and tuple(no_persona["user_span"]) == wp.user_span
    no_history = official_inference_ablation(full, "history")
    text = no_history["instruction"]
    assert (
        "历史博文" not in text
        and "加满一箱油" not in text
        and text.startswith("你的用户名为阿明, 以下是你的用户画像：")
    )
    assert (
        "    - 可以参考你的个人信息、用户画像和这则新闻，用自己的风格和立场发表观点\n    - 不要强行参考历史信息\n"
        in text
    )
    assert text[slice(*no_history["news_span"])] == full["instruction"][slice(*full["news_span"])]
    assert no_history["history_ids"] == [] and not re.search(r"\n\d\. 加满", text)
    with pytest.raises(RecordError, match="full"):
        official_inference_ablation(no_history, "persona")


@pytest.mark.parametrize("spans", ["record", "official"])
def test_prompt_ids_with_spans_are_the_prompt_of_the_training_example(all_records, tokenizer, spans):
    """Generation's prompt (ids and token spans) is exactly the prompt part of the training example, and a prompt
    over max_length is refused there too."""
    from socialalign_lib.build.records.chat import prompt_ids_with_spans

    cfg = ChatConfig(spans=spans)
    for rec in all_records[::7]:
        ex = build_chat_example(tokenizer, rec, cfg)
        ids, (user, news) = prompt_ids_with_spans(tokenizer, {**rec, "output": ""}, cfg)
        assert ids == ex["input_ids"][: ex["prompt_length"]]
        assert [user, news] == [ex["user_span"], ex["news_span"]]
    rec = all_records[0]
    n = build_chat_example(tokenizer, rec, cfg)["prompt_length"]
    with pytest.raises(RecordError, match="max_length"):
        prompt_ids_with_spans(tokenizer, rec, ChatConfig(spans=spans, max_length=n))
    assert len(prompt_ids_with_spans(tokenizer, rec, ChatConfig(spans=spans, max_length=n + 1))[0]) == n
