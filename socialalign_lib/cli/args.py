"""Dataclass configs as command-line options and config files, so a knob is declared (and documented) once.

Every pipeline step already has a dataclass config (``CourseDataConfig``, ``SFTConfig``, ``OpenAIConfig`` …).
:class:`DataclassArgs` turns a few of them into ``argparse`` options and back:

* each field becomes ``--field-name`` (``--flag/--no-flag`` for booleans); a nested dataclass field
  (``CourseDataConfig.retrieval``) contributes its own fields, prefixed (``--retrieval.k``) only where a
  name would otherwise be ambiguous;
* ``--help`` shows the field's documentation, found where this codebase writes it: ``metadata["help"]``,
  the comment on the field's line, an attribute docstring under it, a ``name: text`` / ````name````
  entry in the class docstring, or a fallback class with the same field names (``TrainingArguments`` for
  ``SFTConfig``);
* ``--config file.toml|.json`` gives values by field name — flat (``learning_rate = 2e-5``) or in a table
  named after the group / nested field (``[sft]``) — and explicit options override the file, which overrides
  the dataclass defaults.

Why not ``transformers.HfArgumentParser``: it reads help only from ``metadata`` (most of our fields document
themselves with comments), has no config-file precedence and does not flatten nested configs.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import json
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, Literal, Union

_NONE = ("none", "null")


class ConfigFileError(ValueError):
    """A config file that cannot be read or names a key no option has (the file and the key are in the message)."""


# ----------------------------------------------------------------------------------------------- field help


def _source_docs(cls: type) -> dict[str, str]:
    """Trailing ``# comments`` and attribute docstrings of the fields in ``cls``'s own source."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(src).readline)
        if tok.type == tokenize.COMMENT
    }
    body = ast.parse(src).body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        nxt = body[i + 1] if i + 1 < len(body) else None
        if (
            isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[name] = " ".join(nxt.value.value.split())
        else:
            # the comment on the field's line, or inside the statement: ``ruff format`` wraps a field whose comment
            # makes the line too long as ``x: T = (\n    value  # text\n)``
            inside = [
                comments[n] for n in range(node.lineno, (node.end_lineno or node.lineno) + 1) if n in comments
            ]
            if inside:
                docs[name] = inside[-1]
    return docs


_ARG_LINE = re.compile(r"^(\s*)([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*(?:\([^)]*\))?\s*:\s+(\S.*)$")


def _docstring_docs(cls: type, names: Sequence[str]) -> dict[str, str]:
    """Entries of the class docstring: Google-style lines ``name: text`` / ``a, b, c (type): text`` (with their
    deeper-indented continuation lines), or ````name````: text anywhere (up to the next such entry or a blank line)."""
    doc = inspect.getdoc(cls) or ""
    wanted = set(names)
    out: dict[str, str] = {}
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        m = _ARG_LINE.match(line)
        if not m:
            continue
        keys = [k.strip() for k in m.group(2).split(",")]
        if not set(keys) <= wanted:
            continue
        text, indent = [m.group(3)], len(m.group(1))
        for nxt in lines[i + 1 :]:
            if not nxt.strip() or len(nxt) - len(nxt.lstrip()) <= indent:
                break
            text.append(nxt.strip())
        for k in keys:
            out.setdefault(k, " ".join(text))
    for name in names:
        m = re.search(rf"``{name}``\s*:\s*(.+?)(?=\n\s*\n|``[\w.]+``:|$)", doc, flags=re.S)
        if m and name not in out:
            out[name] = " ".join(m.group(1).split())
    return out


def field_docs(cls: type, fallback: Sequence[type] = ()) -> dict[str, str]:
    """Help text per field of dataclass ``cls`` (see the module docstring for where it is looked up)."""
    names = [f.name for f in dataclasses.fields(cls)]
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's documentation wins over its base's
        if dataclasses.is_dataclass(klass):
            out.update(_docstring_docs(klass, names))
            out.update(_source_docs(klass))
    for f in dataclasses.fields(cls):
        if f.metadata.get("help"):
            out[f.name] = str(f.metadata["help"])
    for fb in fallback:
        for f in dataclasses.fields(fb):
            if f.name in names and f.name not in out and f.metadata.get("help"):
                out[f.name] = str(f.metadata["help"])
    return {k: v for k, v in out.items() if k in names}


# ----------------------------------------------------------------------------------------------- types


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True  # noqa: UP007 - a runtime Union
    return tp, False


def _scalar(tp: Any):
    """A converter from one command-line string to ``tp``'s value."""
    if tp in (int, float, str):
        return tp
    if tp is Path or (isinstance(tp, type) and issubclass(tp, Path)):
        return Path
    if typing.get_origin(tp) is Literal:
        return type(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (Union, types.UnionType):  # e.g. list[str] | str: keep the string
        return str
    return _json_or_str


def _json_or_str(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@dataclass
class Option:
    """One leaf field of a config group, as a command-line option."""

    group: str  # the config group (a name for one dataclass of the command, e.g. "sft")
    path: tuple[str, ...]  # field path inside the group's dataclass, e.g. ("retrieval", "k")
    flag: str
    type: Any
    default: Any
    help: str

    @property
    def dest(self) -> str:
        return ".".join((self.group, *self.path))


def _sequence_item(tp: Any) -> tuple[Any, type] | None:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, tuple, Sequence) and args:
        return args[0], (tuple if origin is tuple else list)
    if origin in (Union, types.UnionType):  # list[str] | str
        for a in args:
            found = _sequence_item(a)
            if found:
                return found
    return None


def _convert(opt: Option, value: Any, source: str) -> Any:
    """A value from the command line (strings) or a config file (JSON/TOML types) → the field's type."""
    tp, optional = _strip_optional(opt.type)
    if optional and isinstance(value, (list, tuple)) and len(value) == 1 and str(value[0]).lower() in _NONE:
        value = None  # `--target-modules none`
    if value is None or (optional and isinstance(value, str) and value.lower() in _NONE):
        if not optional:
            raise ConfigFileError(f"{source}: {opt.dest} cannot be empty (None)")
        return None
    seq = _sequence_item(tp)
    if seq and isinstance(value, str) and typing.get_origin(tp) not in (Union, types.UnionType):
        value = [value]  # `variants = "full"` in a file is one item, not the letters f, u, l, l
    if seq and isinstance(value, (list, tuple)):
        item, kind = seq
        conv = _scalar(item)
        return kind(conv(v) if isinstance(v, str) else v for v in value)
    if tp is bool:
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigFileError(f"{source}: {opt.dest} expects true/false, got {value!r}")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    origin = typing.get_origin(tp)
    if origin is dict or tp is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as err:
                raise ConfigFileError(
                    f"{source}: {opt.dest} expects a JSON object, got {value!r} ({err})"
                ) from None
        if not isinstance(value, dict):
            raise ConfigFileError(f"{source}: {opt.dest} expects a JSON object, got {value!r}")
        return value
    if isinstance(value, str):
        try:
            value = _scalar(tp)(value)
        except ValueError as err:
            raise ConfigFileError(f"{source}: {opt.dest}: {err}") from None
    elif tp is float and isinstance(value, int):
        value = float(value)
    if origin is Literal and value not in typing.get_args(tp):
        raise ConfigFileError(f"{source}: {opt.dest} must be one of {typing.get_args(tp)}, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------- the parser


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _show(value: Any) -> str:
    if value is MISSING:
        return "required"
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value)) or "(empty)"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class DataclassArgs:
    """Dataclass config groups of one command, as options of an ``argparse`` (sub)parser.

    ``groups`` maps a group name (also the config-file table name) to a dataclass type; ``fallback_help`` gives
    extra classes to borrow field help from; ``extra_help`` (``{"group.field": text}``) documents fields their class
    leaves undocumented or documents only in bulk (it wins over the class's text); ``exclude`` names fields
    (``group.field``) that the command sets itself; ``defaults``
    overrides a group's defaults (``{"sft": {"max_steps": 10}}``)."""

    def __init__(
        self,
        groups: Mapping[str, type],
        fallback_help: Mapping[str, Sequence[type]] | None = None,
        exclude: Sequence[str] = (),
        defaults: Mapping[str, Mapping[str, Any]] | None = None,
        extra_help: Mapping[str, str] | None = None,
    ) -> None:
        self.groups = dict(groups)
        self.extra_help = dict(extra_help or {})
        self.exclude = set(exclude)
        self.defaults = {g: dict(v) for g, v in (defaults or {}).items()}
        self.options: list[Option] = []
        for group, cls in self.groups.items():
            self._collect(
                group, cls, (), (fallback_help or {}).get(group, ()), self.defaults.get(group, {}), None
            )
        # the shortest unambiguous name: the field, else parent.field, else the full group.path
        names = [o.path[-1] for o in self.options]
        mids = [".".join(o.path[-2:]) for o in self.options]
        for o in self.options:
            if names.count(o.path[-1]) == 1:
                short = o.path[-1]
            elif len(o.path) > 1 and mids.count(".".join(o.path[-2:])) == 1:
                short = ".".join(o.path[-2:])
            else:
                short = o.dest
            o.flag = "--" + short.replace("_", "-")

    def _collect(
        self,
        group: str,
        cls: type,
        prefix: tuple[str, ...],
        fallback: Sequence[type],
        overrides: Mapping[str, Any],
        base: Any,
    ) -> None:
        """Options for ``cls``'s fields; ``base`` is the parent's default instance of ``cls`` (its values are the
        defaults, e.g. ``CourseDataConfig.retrieval = RetrievalConfig(k=5)``), None at the top."""
        hints = typing.get_type_hints(cls)
        docs = field_docs(cls, fallback)
        for f in dataclasses.fields(cls):
            if not f.init or ".".join((group, *prefix, f.name)) in self.exclude:
                continue
            tp = hints[f.name]
            default = overrides.get(f.name, getattr(base, f.name) if base is not None else _default_of(f))
            if dataclasses.is_dataclass(tp):
                nested = default if dataclasses.is_dataclass(default) else None
                self._collect(group, tp, (*prefix, f.name), fallback, overrides.get(f.name, {}) or {}, nested)
                continue
            dest = ".".join((group, *prefix, f.name))
            self.options.append(
                Option(
                    group,
                    (*prefix, f.name),
                    "",
                    tp,
                    default,
                    self.extra_help.get(dest) or docs.get(f.name, ""),
                )
            )

    # -- argparse ------------------------------------------------------------------------------------

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add ``--config`` and one option per leaf field, grouped by config group in ``--help``."""
        parser.add_argument(
            "--config",
            type=Path,
            default=None,
            metavar="FILE",
            help="a .toml or .json file of option values by field name (flat, or in tables named "
            f"{', '.join(repr(g) for g in self.groups)}); options given here override it",
        )
        sections = {
            g: parser.add_argument_group(f"{g} options ({self.groups[g].__name__})") for g in self.groups
        }
        for o in self.options:
            tp, optional = _strip_optional(o.type)
            text = (o.help + " " if o.help else "") + f"(default: {_show(o.default)})"
            kw: dict[str, Any] = {
                "dest": o.dest,
                "default": argparse.SUPPRESS,
                "help": text.replace("%", "%%"),
            }
            if tp is bool:
                kw["action"] = argparse.BooleanOptionalAction
            else:
                seq = _sequence_item(tp)
                if seq is not None and typing.get_origin(tp) not in (Union, types.UnionType):
                    kw["nargs"] = "*"
                elif seq is not None:
                    kw["nargs"] = "+"
                kw["metavar"] = o.path[-1].upper()
                if typing.get_origin(tp) is Literal:
                    kw["choices"] = list(typing.get_args(tp)) + (list(_NONE) if optional else [])
                    kw["metavar"] = "{" + ",".join(map(str, typing.get_args(tp))) + "}"
            sections[o.group].add_argument(o.flag, **kw)

    # -- values --------------------------------------------------------------------------------------

    def _by_dest(self) -> dict[str, Option]:
        return {o.dest: o for o in self.options}

    def file_values(self, path: str | Path) -> dict[str, Any]:
        """``{dest: value}`` from a TOML / JSON config file; unknown keys raise :class:`ConfigFileError`."""
        path = Path(path)
        try:
            if path.suffix == ".toml":
                import tomllib

                data = tomllib.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".json":
                data = json.loads(path.read_text(encoding="utf-8"))
            else:
                raise ConfigFileError(f"{path}: config files are .toml or .json")
        except (OSError, ValueError) as err:
            if isinstance(err, ConfigFileError):
                raise
            raise ConfigFileError(f"{path}: cannot read config ({err})") from None
        if not isinstance(data, dict):
            raise ConfigFileError(f"{path}: the top level must be a table / object")
        by_dest = self._by_dest()
        leaf = {}
        for o in self.options:
            leaf.setdefault(o.path[-1], []).append(o)
        out: dict[str, Any] = {}

        def walk(d: Mapping[str, Any], where: tuple[str, ...]) -> None:
            for key, value in d.items():
                name = ".".join((*where, key))
                in_groups = [g + "." + name for g in self.groups if g + "." + name in by_dest]
                if name not in by_dest and len(in_groups) > 1:
                    raise ConfigFileError(
                        f"{path}: key {name!r} is ambiguous; put it in one of the tables "
                        f"{sorted(d.rsplit('.', 1)[0] for d in in_groups)}"
                    )
                dest = name if name in by_dest else (in_groups[0] if in_groups else None)
                if dest is not None:
                    out[dest] = _convert(by_dest[dest], value, f"{path}: key {name!r}")
                elif isinstance(value, dict):
                    walk(value, (*where, key))
                elif not where and len(leaf.get(key, [])) == 1:
                    out[leaf[key][0].dest] = _convert(leaf[key][0], value, f"{path}: key {key!r}")
                elif len(leaf.get(key, [])) > 1:
                    raise ConfigFileError(
                        f"{path}: key {name!r} is ambiguous; put it in one of the tables "
                        f"{sorted({o.dest.rsplit('.', 1)[0] for o in leaf[key]})}"
                    )
                else:
                    raise ConfigFileError(f"{path}: unknown key {name!r}")

        walk(data, ())
        return out

    def values(self, ns: argparse.Namespace) -> dict[str, Any]:
        """Merged ``{dest: value}``: dataclass defaults < ``--config`` file < explicit options."""
        by_dest = self._by_dest()
        merged: dict[str, Any] = {o.dest: o.default for o in self.options}
        if getattr(ns, "config", None):
            merged.update(self.file_values(ns.config))
        for dest, value in vars(ns).items():
            if dest in by_dest:
                merged[dest] = _convert(by_dest[dest], value, f"option {by_dest[dest].flag}")
        return merged

    def build(self, ns: argparse.Namespace) -> dict[str, Any]:
        """One dataclass instance per group (nested dataclasses built from their own fields)."""
        vals = self.values(ns)
        return {g: self._instance(cls, g, (), vals) for g, cls in self.groups.items()}

    def _instance(self, cls: type, group: str, prefix: tuple[str, ...], vals: Mapping[str, Any]) -> Any:
        hints = typing.get_type_hints(cls)
        kw = {}
        for f in dataclasses.fields(cls):
            if not f.init or ".".join((group, *prefix, f.name)) in self.exclude:
                continue
            if dataclasses.is_dataclass(hints[f.name]):
                kw[f.name] = self._instance(hints[f.name], group, (*prefix, f.name), vals)
                continue
            value = vals.get(".".join((group, *prefix, f.name)), MISSING)
            if value is MISSING:
                flag = next(o.flag for o in self.options if o.dest == ".".join((group, *prefix, f.name)))
                raise ConfigFileError(f"{flag} is required (give it as an option or in --config)")
            kw[f.name] = value
        return cls(**kw)


def to_config_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as JSON-ready nested dict (paths as strings, tuples as lists): what a run writes beside its
    artifacts so that ``--config`` can replay it."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
        if isinstance(v, (list, tuple, set)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(obj)
