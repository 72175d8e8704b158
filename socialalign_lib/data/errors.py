"""The errors every reader, writer and validator of the data package raises, and the path types they take.

Why a module of its own: the encoding policy, the readers, the writers and the validators all name file, line and
field the same way (:class:`DataFormatError`), and none of them should have to import another just for that (the
old ``io`` ↔ ``clean`` import circle came from exactly this).
"""

from __future__ import annotations

import os

__all__ = ["DataFormatError", "OutputLockedError", "PathLike", "TypeSpec", "join_field"]

PathLike = str | os.PathLike
TypeSpec = type | tuple[type, ...]


class DataFormatError(ValueError):
    """A data file does not hold what it should. ``file``, ``line`` (1-based) and ``field`` (a path such as
    ``user.history[2].text``) say where; ``problem`` says what. ``str(err)`` joins them into one sentence.

    Every part is optional, so ``DataFormatError("free text")`` also works.
    """

    def __init__(
        self, problem: str, *, file: PathLike | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        self.problem = problem
        self.file = None if file is None else str(file)
        self.line = line
        self.field = field or None
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        head = " ".join(where)
        if self.field is not None:
            head = f"{head}, field '{self.field}'" if head else f"field '{self.field}'"
        return f"{head}: {self.problem}" if head else self.problem

    def __reduce__(self):  # keep the keyword-only attributes through pickling (multiprocessing, num_proc)
        return (_rebuild_error, (self.problem, self.file, self.line, self.field))


def _rebuild_error(problem: str, file: str | None, line: int | None, field: str | None) -> DataFormatError:
    return DataFormatError(problem, file=file, line=line, field=field)


def join_field(path: str, key: str | int) -> str:
    """A field path one level deeper: ``join_field("user", "history")`` → ``user.history``, an int → ``[i]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class OutputLockedError(RuntimeError):
    """Another process is writing the same output (its lock file is held); the message names the file."""
