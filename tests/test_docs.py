"""Citations stay inside the repository, and every ``docs/*.md#anchor`` citation resolves.

Users have only the repository, so code, notebooks, tests, configs and the README must not cite the team's
background notes or paper files that are not in it; they cite ``docs/<file>.md#<section>`` instead. An anchor is
a heading's GitHub slug (lower case, punctuation dropped, each space a hyphen, ``-1``, ``-2`` … for repeats) or an
explicit ``<a id="…">``; renaming a heading breaks its citations, and this test names them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
THIS = Path(__file__).resolve()

#: Where citations are looked for: (folder or file, glob). Top-level notebooks only.
SCANNED: tuple[tuple[str, str], ...] = (
    ("socialalign_lib", "**/*"),
    ("notebooks", "*.ipynb"),
    ("tests", "**/*"),
    ("benchmarks", "**/*"),
    ("configs", "**/*"),
    ("tools", "**/*"),
    ("docs", "*.md"),
    ("README.md", ""),
    ("Makefile", ""),
)
TEXT_SUFFIXES = {
    ".py",
    ".ipynb",
    ".md",
    ".toml",
    ".json",
    ".jsonl",
    ".yaml",
    ".yml",
    ".txt",
    ".cfg",
    ".ini",
    ".csv",
    ".jinja",
    "",
}

# Documents that exist only outside the repository. "FORMATS §2.5", "DESIGN §3", "METHODS.md", "ENGINEERING.md",
# "papers/…", "shared/…", and a bare "METHODS)" closing a parenthesised citation (not the Python names
# ``METHODS`` / ``TABLE_METHODS``).
OUTSIDE = re.compile(
    r"\b(?:METHODS|FORMATS|DESIGN|ENGINEERING|STYLE)(?:\.md\b|\s*§)"
    r"|(?<![\w{])METHODS(?=\))"
    r"|(?<![\w.-])papers/"
    r"|(?<![\w.-])shared/"
)
# A citation of one of our docs: "docs/methods.md", "docs/methods.md#pac-lora".
DOC_CITATION = re.compile(r"(?<![\w/.-])docs/([\w.-]+\.md)(?:#([^\s)\]`'\",;<>|]+))?")
# Inside docs/*.md: markdown links to a sibling file and/or an anchor: "(methods.md#routing)", "(#routing)".
DOC_LINK = re.compile(r"\]\((?!https?:)([\w.-]+\.md)?(?:#([^\s)]+))?\)")


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: markup removed, lower case, characters other than letters, digits,
    ``_``, ``-`` and spaces dropped, then every space a hyphen (runs are not collapsed)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor a markdown file defines: heading slugs (repeats numbered as GitHub does) and explicit ids."""
    out: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        m = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = github_slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
        out.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line))
    return out


def _texts(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of a file; a notebook yields its cells' sources, numbered by cell."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".ipynb":
        for i, cell in enumerate(json.loads(raw).get("cells", [])):
            src = cell.get("source", "")
            yield i, "".join(src) if isinstance(src, list) else str(src)
    else:
        yield from enumerate(raw.splitlines(), 1)


def scanned_files(root: Path = ROOT) -> list[Path]:
    files = []
    for where, pattern in SCANNED:
        base = root / where
        candidates = [base] if not pattern else sorted(base.glob(pattern)) if base.is_dir() else []
        for p in candidates:
            if (
                p.is_file()
                and p.suffix in TEXT_SUFFIXES
                and p.resolve() != THIS
                and "__pycache__" not in p.parts
                and ".ipynb_checkpoints" not in p.parts
            ):
                files.append(p)
    return files


def outside_citations(files: list[Path], root: Path = ROOT) -> list[str]:
    """``"file:line: text"`` for every citation of a document that is not in the repository."""
    bad = []
    for path in files:
        for line, text in _texts(path):
            for m in OUTSIDE.finditer(text):
                where = "cell" if path.suffix == ".ipynb" else "line"
                bad.append(
                    f"{path.relative_to(root)} {where} {line}: {text[max(0, m.start() - 20) : m.end() + 30]!r}"
                )
    return bad


def broken_doc_citations(files: list[Path], docs: Path = DOCS, root: Path = ROOT) -> list[str]:
    """``"file:line: target (why)"`` for every docs citation whose file or anchor does not exist."""
    cache: dict[Path, set[str] | None] = {}

    def check(target: Path, anchor: str | None) -> str | None:
        if target not in cache:
            cache[target] = anchors(target.read_text(encoding="utf-8")) if target.is_file() else None
        if cache[target] is None:
            return "no such file"
        if anchor and anchor not in cache[target]:
            return "no such heading anchor"
        return None

    bad = []
    for path in files:
        in_docs = path.parent.resolve() == docs.resolve()
        for line, text in _texts(path):
            refs = [(docs / f, a, f"docs/{f}") for f, a in DOC_CITATION.findall(text)]
            if in_docs:
                refs += [
                    (docs / f if f else path, a or None, f"{f}#{a}" if a else f)
                    for f, a in DOC_LINK.findall(text)
                    if f or a
                ]
            for target, anchor, shown in refs:
                why = check(target, anchor or None)
                if why:
                    bad.append(
                        f"{path.relative_to(root)}:{line}: {shown}{'#' + anchor if anchor and '#' not in shown else ''}"
                        f" ({why})"
                    )
    return bad


# ----------------------------------------------------------------------------------------------- the checks


def test_nothing_cites_documents_outside_the_repository():
    bad = outside_citations(scanned_files())
    assert not bad, "cite docs/<file>.md#<section> instead of:\n" + "\n".join(bad)


def test_docs_citations_point_to_existing_files_and_headings():
    bad = broken_doc_citations(scanned_files())
    assert not bad, "broken docs citations:\n" + "\n".join(bad)


def test_docs_index_lists_every_doc():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in DOCS.glob("*.md") if p.name != "README.md" and f"({p.name})" not in index]
    assert not missing, f"docs/README.md does not link {missing}"


# ----------------------------------------------------------------------------------- the checker itself bites


@pytest.mark.parametrize(
    "heading, slug",
    [
        ("PAC-LoRA", "pac-lora"),
        ("4-bit NF4 on CPU", "4-bit-nf4-on-cpu"),
        ("MultiSmpLLM and IDPOP", "multismpllm-and-idpop"),
        ("The `Trainer`: spans", "the-trainer-spans"),
        ("A / B", "a--b"),
        ("[Linked](x.md) heading", "linked-heading"),
        ("gate_mode values", "gate_mode-values"),
        ("数据 格式", "数据-格式"),
    ],
)
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_repeated_headings_are_numbered_and_code_blocks_ignored():
    md = '# Top\n## Notes\n```\n## Not a heading\n```\n## Notes\n<a id="custom"></a>\n'
    assert anchors(md) == {"top", "notes", "notes-1", "custom"}


def test_checkers_catch_outside_citations_and_broken_anchors(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "methods.md").write_text(
        "# Methods\n## PAC-LoRA\nSee [routing](#routing) and [x](formats.md).\n", encoding="utf-8"
    )
    code = tmp_path / "mod.py"
    code.write_text(
        '"""As in FORMATS §2.5 and METHODS.md, papers/x.txt, /work/shared/DESIGN.md."""\n'
        "# docs/methods.md#pac-lora is fine; docs/methods.md#routing is not; docs/nope.md neither\n"
        "METHODS: tuple = ()  # a Python name, not a citation\n",
        encoding="utf-8",
    )
    files = [code, docs / "methods.md"]
    outside = outside_citations(files, root=tmp_path)
    assert len(outside) == 5 and all(s.startswith("mod.py line 1") for s in outside), outside
    broken = broken_doc_citations(files, docs=docs, root=tmp_path)
    assert broken == [
        "mod.py:2: docs/methods.md#routing (no such heading anchor)",
        "mod.py:2: docs/nope.md (no such file)",
        "docs/methods.md:3: #routing (no such heading anchor)",
        "docs/methods.md:3: formats.md (no such file)",
    ], broken


def test_the_current_repository_is_scanned():
    files = {p.relative_to(ROOT).as_posix() for p in scanned_files()}
    assert {"README.md", "socialalign_lib/records.py", "docs/methods.md"} <= files
    assert any(f.startswith("notebooks/") and f.endswith(".ipynb") for f in files)
    assert "tests/test_docs.py" not in files
