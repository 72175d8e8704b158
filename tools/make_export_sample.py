"""Write data/weibo_export_sample/: a small, synthetic Weibo export in the real format (notebook 10, tests).

The text is invented; the *format* is that of the public daily exports researchers work with: one
``userid,text`` CSV per day, GB18030, CRLF, written by a CSV writer (quoted cells with commas or line breaks),
with what such exports carry — '?' where GBK had no emoji, the web page's card icons (``O网页链接``, ``O<link
title>``, ``L<video title>``), ``［…］`` words in full-width brackets, posts that are only a hashtag, empty
posts, a bot posting one text under many accounts, and users who post on several days. A labelled
``text,label`` file with seven emotion names, most texts repeated (as public emotion sets are), goes beside it.

Run: ``python tools/make_export_sample.py`` (deterministic; rewrites the folder).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "data" / "weibo_export_sample"
DAYS = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]

PHRASES = {
    "negative": [
        "真的扛不住了",
        "太离谱了吧",
        "气死我了",
        "又是这样，失望透顶",
        "凭什么啊",
        "受不了了，退钱",
        "越来越过分了",
        "心寒",
        "别再折腾老百姓了",
        "恶心死了",
        "太难了",
        "谁来管管",
    ],
    "neutral": [
        "先看看再说",
        "坐等后续",
        "有没有人知道具体情况",
        "转发了解一下",
        "明天再看",
        "就这样吧",
        "不知道说什么",
        "蹲一个官方回复",
        "路过",
        "关注一下",
    ],
    "positive": [
        "太好了，支持",
        "为祖国骄傲",
        "终于等到了，开心",
        "干得漂亮",
        "点赞[赞]",
        "好消息啊",
        "感动哭了",
        "必须支持一下",
        "真不错",
        "越来越好了",
    ],
}
OPENERS = ["", "", "", "说实话", "我觉得", "唉", "哈哈", "家人们", "刚看到", "真的"]
ENDINGS = ["", "", "", "啊", "吧", "呢", "！", "。", "…", "了", "！！"]  # noqa: RUF001
EMOTION_OF = {
    "negative": ["anger", "disgust", "sadness", "fear"],
    "neutral": ["none", "surprise"],
    "positive": ["like", "happiness"],
}
# hashtag → its crowd's mood per day (None: not trending that day → a missing crowd)
HASHTAGS = {
    "油价今晚上调": [(0.75, 0.15, 0.10), (0.55, 0.25, 0.20), (0.35, 0.30, 0.35), (0.20, 0.35, 0.45)],
    "神舟十八号发射成功": [None, (0.05, 0.15, 0.80), (0.05, 0.25, 0.70), None],
    "春运返程高峰": [(0.35, 0.40, 0.25), (0.40, 0.35, 0.25), (0.30, 0.40, 0.30), (0.25, 0.40, 0.35)],
    "食品安全": [(0.60, 0.30, 0.10), None, (0.55, 0.30, 0.15), (0.65, 0.25, 0.10)],
}
LABELS = ("negative", "neutral", "positive")
CARDS = [
    "O网页链接",
    "O北京发布：关于调整成品油价格的通知",
    "L央视新闻的微博视频",
    "L现场画面来了",
    "L张三的秒拍视频",
]
BOT = "neg 转发这条微博，太离谱了吧！"  # noqa: RUF001 - one text, posted by many accounts (replaced per hashtag)


def _post(rng: np.random.Generator, tag: str, sentiment: str) -> str:
    words = str(rng.choice(OPENERS)) + rng.choice(PHRASES[sentiment])
    if rng.random() < 0.6:
        words += "，" + rng.choice(PHRASES[sentiment])  # noqa: RUF001
    words += str(rng.choice(ENDINGS))
    head = f"#{tag}# " if rng.random() < 0.6 else ""
    tail = f" #{tag}#" if not head else ""
    text = head + words + tail
    if rng.random() < 0.6:  # the export's '?' for an emoji GBK could not hold
        text = (
            text.replace("，", "?", 1)
            if "，" in text and rng.random() < 0.3
            else text + "?" * int(rng.integers(1, 4))
        )  # noqa: RUF001
    if rng.random() < 0.15:
        text += " " + rng.choice(CARDS)
    if rng.random() < 0.05:
        text = text.replace(words, words + "，今天［没时间］细看", 1)  # noqa: RUF001
    if rng.random() < 0.04:
        text = text.replace(words, words + "\n第二段：", 1)  # a cell with a line break, quoted by the writer
    return text


def _csv(rows: list[tuple[str, str]], header: tuple[str, str]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("gb18030")


def main(seed: int = 0, per_crowd: int = 28, out: Path = OUT) -> None:
    rng = np.random.default_rng(seed)
    (out / "daily").mkdir(parents=True, exist_ok=True)
    users = [str(5_000_000_000 + int(x)) for x in rng.choice(10**6, 260, replace=False)]
    regulars = users[:40]  # post on several days: one merged history each
    for d, day in enumerate(DAYS):
        rows = []
        for tag, moods in HASHTAGS.items():
            if moods[d] is None:
                continue
            for _ in range(per_crowd + int(rng.integers(-4, 5))):
                s = LABELS[int(rng.choice(3, p=moods[d]))]
                uid = str(rng.choice(regulars if rng.random() < 0.35 else users))
                rows.append((uid, _post(rng, tag, s)))
            rows += [(str(rng.choice(users)), f"#{tag}#") for _ in range(2)]  # a hashtag and nothing else
            if d in (1, 2) and tag == "油价今晚上调":
                bot = BOT.replace("neg ", f"#{tag}# ")
                rows += [(str(5_900_000_000 + k), bot) for k in range(6)]
        rows += [(str(rng.choice(users)), ""), (str(rng.choice(users)), "今天天气不错，出去走走")]  # noqa: RUF001
        rows = [rows[i] for i in rng.permutation(len(rows))]
        (out / "daily" / f"{day}.csv").write_bytes(_csv(rows, ("userid", "text")))
    labelled = []
    for i in range(90):
        s = LABELS[i % 3]
        text = rng.choice(PHRASES[s]) + ("，" + rng.choice(PHRASES[s]) if rng.random() < 0.5 else "")  # noqa: RUF001
        # one text in five is ambiguous: its annotator chose an emotion of another polarity
        emotion = str(rng.choice(EMOTION_OF[s if rng.random() < 0.8 else LABELS[int(rng.integers(3))]]))
        for _ in range(int(rng.integers(1, 6))):  # most texts repeated, as in the public sets
            labelled.append(
                (f"#{rng.choice(list(HASHTAGS))}# {text}" if rng.random() < 0.3 else text, emotion)
            )
    labelled = [labelled[i] for i in rng.permutation(len(labelled))]
    (out / "emotions_labelled.csv").write_bytes(_csv(labelled, ("text", "label")))


if __name__ == "__main__":
    main()
    for path in sorted(OUT.rglob("*.csv")):
        print(f"{path.relative_to(OUT.parents[1])}: {path.stat().st_size} bytes")
