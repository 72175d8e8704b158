"""LaMP questions + outputs (docs/formats.md#lamp) as cases: the profile is the history, the question the topic."""

from __future__ import annotations

import re

from ..errors import DataFormatError, PathLike
from ..read import iter_json_records, read_json
from ..schema import Case, Post, Topic, User
from ._common import _str_field

__all__ = ["LAMP_PREFIXES", "load_lamp"]

LAMP_PREFIXES: dict[str, str] = {
    "LaMP_4": "Generate a headline for the following article: ",
    "LaMP_5": "Generate a title for the following abstract of a paper: ",
    "LaMP_6": "Generate a subject for the following email: ",
    "LaMP_7": "Paraphrase the following tweet without any explanation before or after it: ",
    "LaMP_3": "What is the score of the following review on a scale of 1 to 5? just answer with 1, 2, 3, 4, "
    "or 5 without further explanation. review: ",
}
"""Input prefixes of the generation tasks (and LaMP-3); the rest of ``input`` is the item the user responds to."""

# profile item → (the user's own text, the context it responds to)
_LAMP_PROFILE: dict[str, tuple[str, str | None]] = {
    "LaMP_4": ("title", "text"),
    "LaMP_5": ("title", "abstract"),
    "LaMP_6": ("title", "text"),
    "LaMP_7": ("text", None),
    "LaMP_3": ("text", None),
    "LaMP_1": ("title", "abstract"),
    "LaMP_2": ("tag", "description"),
}


def _lamp_task(name: str) -> str:
    m = re.fullmatch(r"(?i)lamp[-_ ]?(\d)", name.strip())
    if not m:
        raise ValueError(f"unknown LaMP task {name!r}; expected LaMP_1 .. LaMP_7")
    return f"LaMP_{m.group(1)}"


def _guess_lamp_task(inp: str) -> str | None:
    for task, prefix in LAMP_PREFIXES.items():
        if inp.startswith(prefix):
            return task
    return None


def _lamp_golds(path: PathLike, encoding: str) -> tuple[str | None, dict[str, str]]:
    doc = read_json(path, encoding=encoding)
    task, golds = None, doc
    if isinstance(doc, dict):
        task = doc.get("task")
        golds = doc.get("golds")
        if not isinstance(golds, list):
            raise DataFormatError("missing" if golds is None else "expected a list", file=path, field="golds")
    if not isinstance(golds, list):
        raise DataFormatError('expected {"task", "golds": [...]} or a list of {"id", "output"}', file=path)
    out: dict[str, str] = {}
    for i, g in enumerate(golds):
        if not isinstance(g, dict) or "id" not in g or not isinstance(g.get("output"), str):
            raise DataFormatError("expected {id, output: str}", file=path, field=f"golds[{i}]")
        out[str(g["id"])] = g["output"]
    return (_lamp_task(task) if isinstance(task, str) else None), out


def load_lamp(
    questions_path: PathLike,
    outputs_path: PathLike | None = None,
    *,
    task: str | None = None,
    encoding: str = "utf-8",
) -> list[Case]:
    """LaMP ``*_questions.json`` (+ ``*_outputs.json``) → :class:`Case` list.

    Mapping (generation tasks 4/5/7; others by the same rule): the ``profile`` is the user's history, each
    item a post whose text is what the user *wrote* (LaMP-4/5 ``title``, LaMP-7 ``text``) and, where the item
    has one, whose ``retweet`` holds what they wrote it *about* (LaMP-4 article ``text``, LaMP-5 ``abstract``)
    — the same shape as a Weibo repost with a comment. The question becomes the topic: ``news`` is the
    ``input`` without its task prefix (:data:`LAMP_PREFIXES`), ``category`` the task, ``hashtag`` empty. The
    response is the gold output ("" without an outputs file). ``user_id`` is the question's ``user_id``
    (time-based split) or ``"lamp-{id}"``.
    """
    gold_task, golds = (None, {}) if outputs_path is None else _lamp_golds(outputs_path, encoding)
    task_name = _lamp_task(task) if task else gold_task
    cases = []
    seen: set[str] = set()
    for i, (line, q) in enumerate(iter_json_records(questions_path, encoding=encoding)):
        if not isinstance(q, dict):
            raise DataFormatError(
                f"expected an object, got {type(q).__name__}", file=questions_path, line=line
            )
        qid = q.get("id")
        if qid is None:
            raise DataFormatError("missing", file=questions_path, line=line, field=f"[{i}].id")
        qid = str(qid)
        inp = _str_field(q, "input", questions_path, line, f"[{i}]")
        profile = q.get("profile")
        if not isinstance(profile, list):
            raise DataFormatError(
                "missing" if profile is None else "expected a list",
                file=questions_path,
                line=line,
                field=f"[{i}].profile",
            )
        if not profile:
            raise DataFormatError(
                "empty history (empty profile)", file=questions_path, line=line, field=f"[{i}].profile"
            )
        t = task_name or _guess_lamp_task(inp)
        if t is None:
            raise DataFormatError(
                "cannot tell the LaMP task from the input; pass task='LaMP_N'",
                file=questions_path,
                line=line,
                field=f"[{i}].input",
            )
        own, context = _LAMP_PROFILE.get(t, ("text", None))
        uid = str(q.get("user_id") or f"lamp-{qid}")
        history = []
        for j, item in enumerate(profile):
            where = f"[{i}].profile[{j}]"
            if not isinstance(item, dict):
                raise DataFormatError("expected an object", file=questions_path, line=line, field=where)
            text = _str_field(item, own, questions_path, line, where)
            pid = str(item.get("id", f"{qid}-p{j}"))
            retweet = None
            if context is not None and isinstance(item.get(context), str):
                retweet = Post(post_id=f"{pid}-src", user_id="", text=item[context], created_at="")
            history.append(
                Post(
                    post_id=pid,
                    user_id=uid,
                    text=text,
                    created_at=str(item.get("date") or ""),
                    retweet=retweet,
                )
            )
        if outputs_path is not None and qid not in golds:
            raise DataFormatError(
                f"question id {qid!r} has no gold output in {outputs_path}",
                file=questions_path,
                line=line,
                field=f"[{i}].id",
            )
        seen.add(qid)
        prefix = LAMP_PREFIXES.get(t, "")
        news = inp[len(prefix) :] if prefix and inp.startswith(prefix) else inp
        topic = Topic(topic_id=f"lamp-{qid}", hashtag="", news=news, category=t, time="")
        user = User(user_id=uid, screen_name=uid, history=history)
        response = Post(post_id=f"lamp-{qid}-out", user_id=uid, text=golds.get(qid, ""), created_at="")
        cases.append(Case(case_id=f"lamp-{qid}", topic=topic, user=user, response=response, sentiment=""))
    extra = sorted(set(golds) - seen)
    if extra:
        raise DataFormatError(
            f"{len(extra)} gold id(s) have no question (e.g. {extra[:3]}); the evaluator "
            "requires the same id sets",
            file=outputs_path,
        )
    return cases
