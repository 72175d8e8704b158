"""Tiny helper to author notebooks from Python lists of cells (kept so edits stay reviewable).

Usage in a scratch script: ``write_notebook(path, [md("# Title"), params("size = 'course'"), code("...")])``.
Outputs are never stored here: `make course` executes copies into notebooks/executed/.
"""

from __future__ import annotations

import nbformat


def md(src: str):
    return nbformat.v4.new_markdown_cell(src.strip("\n"))


def code(src: str):
    return nbformat.v4.new_code_cell(src.strip("\n"))


def params(src: str):
    cell = nbformat.v4.new_code_cell(src.strip("\n"))
    cell.metadata["tags"] = ["parameters"]
    return cell


def write_notebook(path: str, cells: list) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    nbformat.write(nb, path)
