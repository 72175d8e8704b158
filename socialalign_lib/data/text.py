"""Weibo text rules: THE hashtag rule, emoji, HTML, width folding and the official strip list.

Why one module: the crawler output, the real-data loaders, the labellers and the dataset builder must agree on
what a "clean" post and a hashtag are, or a post that survives the history filter in one notebook is dropped in
the next.

* :data:`HASHTAG` — the library's one ``#话题#`` pattern; :func:`extract_hashtags`, :func:`strip_hashtags`,
  :func:`is_only_hashtags` and :func:`has_words` read text with it, and nothing else compiles its own.
* :func:`clean_text` with a :class:`CleanConfig`. The default turns mobile-API HTML into text, folds
  full-width ASCII (keeping Chinese ``，！？：；（）``), removes invisible characters and URLs, applies the
  official strip list (docs/formats.md#official-cleaning-rules) and collapses whitespace; mentions, repost chains,
  ``[表情]`` codes, emoji and hashtags are kept unless asked. ``CleanConfig.official()`` is upstream's
  ``clean_text`` byte for byte, so the two can be compared.

Decoding files is ``data.encoding``'s job, the official history-post filter ``data.history``'s.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

__all__ = [
    "CleanConfig",
    "clean_text",
    "extract_hashtags",
    "html_to_text",
    "is_only_hashtags",
    "WEIBO_EMOJI_NAMES",
    "HASHTAG",
    "strip_hashtags",
    "has_words",
]

# --------------------------------------------------------------------------------------------- patterns

HASHTAG = re.compile(r"#([^#\s](?:[^#\n]{0,62}[^#\s])?)#")
"""THE hashtag rule of the library (loaders, cleaner, labellers, personas, crawler parser, world all use it):
'#', 1–64 characters with no '#' or newline that neither start nor end with whitespace, '#'; group 1 is the
tag. The whitespace rule keeps "C# 和 F#" from reading as the hashtag " 和 F", and in ``#a#b# 正文#c#`` it
finds ``#a#`` and ``#c#`` and leaves the writer's ``正文``, which a looser ``#[^#]+#`` would swallow."""
_HASHTAG = HASHTAG
# Weibo emoticon codes: "[笑cry]", "[doge]", "[允悲]"; not "[1]" or "[2024]" (footnotes, years). Only ASCII
# brackets: full-width "［没时间］" is how Chinese text brackets real words (kept full-width, see keep_fullwidth).
_EMOJI_CODE = re.compile(r"\[(?![\d.,:/-]+\])([^\[\]\s]{1,8})\]")
# Pictographic emoji and their glue (variation selector, ZWJ, keycap, tags, skin tones, flags).
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\ufe0e\ufe0f\u200d\u20e3\U000e0020-\U000e007f]+"
)
_URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"'\u3000-\u303f\u4e00-\u9fff\uff00-\uffef“”‘’]+"
    r"|(?<![A-Za-z0-9.])t\.cn/[A-Za-z0-9]+",
    re.IGNORECASE,
)
# "@昵称" (Weibo names: 2–30 of CJK, letters, digits, '_' and '-'); not the '@' of an e-mail address.
# Stripping also takes the "回复" before a comment reply and the colon after it.
_MENTION_STRIP = re.compile(r"(?:回复)?(?<![A-Za-z0-9_.\-])@[\w\-]{1,30}[:：]?")
_REPOST_CHAIN = re.compile(r"\s*(?<!:)//\s*@")
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200e\u200f\u2060\ufeff\ue000-\uf8ff]")
_HTML_HINT = re.compile(
    r"<(?:a|span|img|br|i|p|div|em|strong|b|font|sup|sub)\b[^<>]*>|</(?:a|span|i|p|div|em|strong|b|font)\s*>"
    r"|&(?:[a-zA-Z]{2,8}|#\d{1,7}|#[xX][0-9a-fA-F]{1,6});"
)
_TAG = re.compile(r"<[^<>]*>")

# The official rules (upstream utils/clean_text.py), verbatim — including the unescaped dots of '...\n全文'.
_OFFICIAL_PATTERNS = (
    re.compile(r"\n\S+的微博视频"),
    re.compile(r"\n\S+的微博直播"),
    re.compile(r"...\n全文"),
)
_OFFICIAL_HASH_PATTERNS = (re.compile(r"#[^#]+的微博直播"), re.compile(r"#[^#]+的微博视频"))
_OFFICIAL_LITERALS = ("网页链接", "微博正文", "//", "#热门视频#")
# Our refinement: the same targets, written so that they do not eat real text. "...全文" needs real dots
# (or '…'); the video label also goes when the mobile site's 'L' icon glyph marks where it starts; '//'
# goes except inside "://" so kept URLs survive.
# Exports copied from the web page also keep the card icons: 'O' before a link card ("O网页链接", or the
# linked page's title) and 'L' before a video card (its title), plus "展开全文c" ('c' is the chevron icon).
_VIDEO = r"的(?:微博|秒拍|美拍)(?:视频|直播)"
_WEIBO_PATTERNS = (
    re.compile(r"\n\S+" + _VIDEO),
    re.compile(r"(?<![A-Za-z0-9])L[^\s#L]{1,30}?" + _VIDEO),
    re.compile(r"(?<![A-Za-z0-9])O网页链接"),
    re.compile(r"(?:\.\.\.|…+)?\s*展开全文c?"),
    re.compile(r"(?:\.\.\.|…+)\s*全文"),
    # a card title: an 'O'/'L' icon after a space or punctuation mark (never inside a word: "L码", "O型血",
    # "OK" stay), 3–60 characters with no sentence punctuation or '#', and nothing after it but spaces,
    # hashtags, emoticon codes and emoji — a card is the tail of a post.
    re.compile(
        r"(?<=\W)[OL](?![A-Za-z0-9\s])[^\n#，。！？!?,；;]{3,60}?"
        r"(?=(?:\s|#[^#\n]*#|\[[^\[\]\s]{1,8}\]|[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d])*$)"
    ),
)
# What an export put where its encoding had no character (an emoji in GBK/GB2312): U+FFFD, or '?' — an ASCII
# '?' not right after printable ASCII ("what?", "a=1?" keep theirs; after a hashtag's '#' or an emoticon code's
# ']' it is an emoji again), since Chinese question marks are '？'.
_REPLACEMENT_MARKS = re.compile(r"(?<![\x21\x22\x24-\x5c\x5e-\x7e])\?+|\ufffd+")
_WEIBO_SLASHES = re.compile(r"(?<!:)//")

# "[code]" → a readable word for name mode, where the code is English or not the usual word; every other
# code maps to its own text ("[哈哈]" → "哈哈"). Why: tokenisers and sentiment lexicons can then read it.
WEIBO_EMOJI_NAMES: dict[str, str] = {
    "笑cry": "笑哭",
    "doge": "狗头",
    "二哈": "狗头",
    "good": "赞",
    "ok": "好的",
    "OK": "好的",
    "NO": "不要",
    "心": "爱心",
    "伤心": "心碎",
    "泪": "流泪",
    "怒": "愤怒",
    "拜拜": "再见",
    "吐": "呕吐",
    "黑线": "无语",
    "打call": "支持",
    "抱抱": "拥抱",
    "握手": "握手",
    "蜡烛": "悼念",
}

# Full-width ASCII (U+FF01–U+FF5E) → ASCII, and the ideographic space → ' '.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


# ----------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class CleanConfig:
    """What :func:`clean_text` does. Defaults: readable text for models and people, nothing meaningful lost.

    html:             mobile-API HTML (``mblog.text``) → text: tags dropped, ``<br>`` → newline, an emoticon
                      ``<img alt="[笑cry]">`` → its code, a video/live label put on its own line so the strip
                      rules find it. Only runs when the text looks like HTML ("a<b" stays).
    width:            "fullwidth" folds full-width ASCII (``ＡＢＣ１２３＠＃``) to ASCII; "nfkc" applies NFKC
                      (also ``①``→1, ``㎡``→m2); both keep the characters in ``keep_fullwidth``; "none".
    keep_fullwidth:   full-width punctuation that is *Chinese* punctuation, not ASCII in disguise. (``。、《》「」``
                      are not full-width forms and are never touched.) ``［］`` are kept so a bracketed word
                      (``［没时间］``) is not read as an emoticon code; ``？`` is never folded while
                      ``replacement_marks="strip"`` (a folded ``?`` would read as a replacement mark).
    replacement_marks: "strip" (default) the marks an export left for characters its encoding lacked (emoji in
                      GBK): U+FFFD, and ASCII ``?`` unless it follows printable ASCII (``what?`` keeps it).
                      Chinese writes ``？``, so in a Chinese post a bare ``?`` is almost always a lost emoji;
                      left in, it is a feature a labeller learns. "keep" leaves them.
    invisible:        drop zero-width characters, BOMs, soft hyphens and private-use icon glyphs (U+E627…).
    strip_rules:      the official strip list — "weibo" (ours: the same targets, safe for real text and URLs,
                      plus the web page's card icons: ``O网页链接``, a link card ``O<title>`` or video card
                      ``L<title>`` ending a post, ``L…的秒拍视频``, ``展开全文c``),
                      "official" (upstream's regexes verbatim, e.g. ``...\\n全文`` eats any 3 characters),
                      or "none".
    urls:             "strip" or "keep" http(s)://, www. and t.cn links.
    mentions:         "keep" or "strip" ``@昵称`` (with a reply's "回复" and the colon after the name).
    repost_chain:     "keep", or "own": only the user's words before the first ``//@`` of a repost chain.
    emoji_codes:      ``[表情]`` codes: "keep", "strip", or "name" (``[笑cry]`` → ``笑哭``; see ``emoji_names``).
    emoji_names:      overrides for "name" mode, merged over :data:`WEIBO_EMOJI_NAMES`.
    emoji:            Unicode emoji: "keep" or "strip".
    hashtags:         ``#话题#``: "keep", "strip", or "text" (keep ``话题`` without the ``#``).
    keep_newlines:    keep single line breaks (spaces still collapse); upstream collapses all whitespace.
    max_passes:       the steps run until the text stops changing (a removal can expose a new match, e.g.
                      ``#a#`` inside ``##a##``), at most this many times, so ``clean(clean(x)) == clean(x)``.
    """

    html: bool = True
    width: Literal["fullwidth", "nfkc", "none"] = "fullwidth"
    keep_fullwidth: str = "，！？：；（）［］"
    replacement_marks: Literal["strip", "keep"] = "strip"
    invisible: bool = True
    strip_rules: Literal["weibo", "official", "none"] = "weibo"
    urls: Literal["strip", "keep"] = "strip"
    mentions: Literal["keep", "strip"] = "keep"
    repost_chain: Literal["keep", "own"] = "keep"
    emoji_codes: Literal["keep", "strip", "name"] = "keep"
    emoji_names: Mapping[str, str] | None = None
    emoji: Literal["keep", "strip"] = "keep"
    hashtags: Literal["keep", "strip", "text"] = "keep"
    keep_newlines: bool = False
    max_passes: int = 8

    _CHOICES = {
        "width": ("fullwidth", "nfkc", "none"),
        "strip_rules": ("weibo", "official", "none"),
        "replacement_marks": ("strip", "keep"),
        "urls": ("strip", "keep"),
        "mentions": ("keep", "strip"),
        "repost_chain": ("keep", "own"),
        "emoji_codes": ("keep", "strip", "name"),
        "emoji": ("keep", "strip"),
        "hashtags": ("keep", "strip", "text"),
    }

    def __post_init__(self) -> None:
        for name, allowed in self._CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"CleanConfig.{name}={getattr(self, name)!r}; choose from {allowed}")
        if self.max_passes < 1:
            raise ValueError(f"CleanConfig.max_passes={self.max_passes}; must be ≥ 1")

    @classmethod
    def official(cls) -> CleanConfig:
        """Upstream's ``utils/clean_text.clean_text`` exactly: strip list + whitespace, one pass, nothing else.

        Upstream read plain text (the crawler ran with ``remove_html_tag=1``), so HTML is left alone here.
        """
        return cls(
            html=False,
            width="none",
            invisible=False,
            strip_rules="official",
            urls="keep",
            max_passes=1,
            replacement_marks="keep",
        )

    @classmethod
    def for_model(cls) -> CleanConfig:
        """Text as a language model should see a reply: the user's own words (no chain), no @names or links."""
        return cls(mentions="strip", repost_chain="own")


# ------------------------------------------------------------------------------------------------- HTML


class _WeiboHTML(HTMLParser):
    """Visible text of mobile-API HTML. Emoticon ``<img alt>`` → its code; ``<br>`` → newline; script/style
    dropped; an icon-font glyph (``<i class="wbicon">L</i>``, the PC page's) and a ``span.surl-text`` naming a
    video or live stream ("张三的微博视频") start a new line — where upstream's strip rule expects the label."""

    _SKIP = ("script", "style")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip: list[str] = []
        self._spans: list[int | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag in self._SKIP or (tag == "i" and any(c.startswith(("wbicon", "ficon")) for c in classes)):
            if tag == "i" and not self._skip:  # an icon glyph ('L' video, 'O' link) starts a link label
                self.parts.append("\n")
            self._skip.append(tag)
        elif self._skip:
            return
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "img":
            alt = (a.get("alt") or "").strip()
            if _EMOJI_CODE.fullmatch(alt):
                self.parts.append(alt)
        elif tag in ("p", "div"):
            self.parts.append("\n")
        elif tag == "span":
            self._spans.append(len(self.parts) if "surl-text" in classes else None)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "span":  # a self-closed span opens nothing
            depth = len(self._skip)
            self.handle_starttag(tag, attrs)
            del self._skip[depth:]  # nor does a self-closed <i class="wbicon"/> or <script/>

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if self._skip[-1] == tag:
                self._skip.pop()
            return
        if tag == "span" and self._spans:
            start = self._spans.pop()
            if start is not None and re.search(r"的微博(?:视频|直播)$", "".join(self.parts[start:]).strip()):
                self.parts.insert(start, "\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Mobile-API ``mblog.text`` HTML → plain text (see :class:`_WeiboHTML`); plain text passes through.

    ``html.parser`` is lenient but not bullet-proof on arbitrary input, so a parser failure falls back to
    dropping tags with a regex rather than losing the post.
    """
    if not _HTML_HINT.search(html):
        return html
    parser = _WeiboHTML()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - any parser failure: degrade to tag stripping
        import html as _html

        return _html.unescape(_TAG.sub("", html))
    return "".join(parser.parts)


# --------------------------------------------------------------------------------------------- cleaning


def _fold_width(text: str, mode: str, keep: str) -> str:
    if mode == "none":
        return text
    if mode == "fullwidth":
        table = {cp: to for cp, to in _FULLWIDTH.items() if chr(cp) not in keep}
        return text.translate(table)
    if not keep:
        return unicodedata.normalize("NFKC", text)
    # NFKC each run between kept characters, so "，" survives while "ＡＢＣ" and "①" fold.
    pieces = re.split(f"([{re.escape(keep)}])", text)
    return "".join(p if (len(p) == 1 and p in keep) else unicodedata.normalize("NFKC", p) for p in pieces)


def _strip_rules(text: str, rules: str, stage: int) -> str:
    """The official strip list in two stages, in upstream's order: patterns (stage 1), literals (stage 2)."""
    if rules == "none":
        return text
    if stage == 1:
        for pat in _OFFICIAL_PATTERNS if rules == "official" else _WEIBO_PATTERNS:
            text = pat.sub("", text)
        for pat in _OFFICIAL_HASH_PATTERNS:
            text = pat.sub("#", text)
        return text
    for literal in _OFFICIAL_LITERALS:
        text = (
            _WEIBO_SLASHES.sub("", text)
            if (literal == "//" and rules == "weibo")
            else text.replace(literal, "")
        )
    return text


def _emoji_name(match: re.Match[str], names: Mapping[str, str]) -> str:
    return names.get(match.group(1), match.group(1))


def _clean_once(text: str, cfg: CleanConfig, names: Mapping[str, str]) -> str:
    if cfg.html:
        text = html_to_text(text)
    if cfg.invisible:
        text = _INVISIBLE.sub("", text)
    if cfg.replacement_marks == "strip":
        text = _REPLACEMENT_MARKS.sub("", text)
    text = _fold_width(
        text, cfg.width, cfg.keep_fullwidth + ("？" if cfg.replacement_marks == "strip" else "")
    )
    text = _strip_rules(text, cfg.strip_rules, 1)
    if cfg.repost_chain == "own":
        text = _REPOST_CHAIN.split(text, 1)[0]
    if cfg.urls == "strip":
        text = _URL.sub("", text)
    if cfg.mentions == "strip":
        text = _MENTION_STRIP.sub("", text)
    text = _strip_rules(text, cfg.strip_rules, 2)
    if cfg.emoji_codes == "strip":
        text = _EMOJI_CODE.sub("", text)
    elif cfg.emoji_codes == "name":
        text = _EMOJI_CODE.sub(lambda m: _emoji_name(m, names), text)
    if cfg.emoji == "strip":
        text = _EMOJI.sub("", text)
    if cfg.hashtags == "strip":
        text = _HASHTAG.sub("", text)
    elif cfg.hashtags == "text":
        text = _HASHTAG.sub(r"\1", text)
    if cfg.keep_newlines:
        text = re.sub(r"[^\S\n]+", " ", text)
        text = re.sub(r" ?\n[\s]*", "\n", text).strip()
    else:
        text = re.sub(r"\s+", " ", text.strip())  # upstream: strip(), then \s+ → ' '
    return text


def clean_text(text: str, cfg: CleanConfig | None = None) -> str:
    """One Weibo post's text, cleaned as ``cfg`` says (see :class:`CleanConfig`; default ``CleanConfig()``).

    >>> clean_text('今天的<a href="/search"><span class="surl-text">#星光大赏#</span></a> 网页链接 http://t.cn/A6x')
    '今天的#星光大赏#'
    """
    cfg = cfg or _DEFAULT
    names = WEIBO_EMOJI_NAMES if cfg.emoji_names is None else {**WEIBO_EMOJI_NAMES, **cfg.emoji_names}
    text = text or ""
    for _ in range(cfg.max_passes):
        new = _clean_once(text, cfg, names)
        if new == text:
            break
        text = new
    return text


_DEFAULT = CleanConfig()


def extract_hashtags(text: str) -> list[str]:
    """``#话题#`` hashtags in ``text`` (plain or mobile-API HTML), without the ``#``, in order, no repeats.

    Full-width ``＃`` counts as ``#``. A hashtag has 1–64 characters and neither starts nor ends with a space.
    """
    plain = html_to_text(text or "").translate({0xFF03: ord("#")})
    return list(dict.fromkeys(m.group(1) for m in _HASHTAG.finditer(plain)))


def strip_hashtags(text: str) -> str:
    """``text`` without its :data:`HASHTAG` spans (nothing else changed): the writer's own words."""
    return HASHTAG.sub("", text or "")


def is_only_hashtags(text: str) -> bool:
    """True when ``text`` holds at least one hashtag and nothing else but whitespace (upstream's rule, read
    with the library's one :data:`HASHTAG` definition)."""
    return HASHTAG.search(text or "") is not None and not strip_hashtags(text).strip()


def has_words(text: str) -> bool:
    """Whether ``text`` says anything beyond its hashtags: a letter, digit or symbol (emoji, emoticon codes
    count) once hashtags are removed. False for ``""``, ``"#话题#"``, ``"#话题# ？？"``, ``"?? …"``.

    Why: a labeller must answer something for every text, so a post with no words gets its *prior* (the
    most frequent training label), which is no one's opinion; crowd helpers leave such posts out and count them.
    """
    return any(unicodedata.category(ch)[0] in "LNS" for ch in strip_hashtags(text))
