"""Keep secrets (a login cookie, an API key) out of every log record, whichever library writes it.

A ``logging.Filter`` on our own logger is not enough: with ``-v`` the HTTP libraries log at DEBUG under their own
names (``httpcore.http11`` prints a rejected header value whole inside an exception repr), and a filter on a
logger never sees records of other loggers. So the redaction sits in the log-record factory, which every
logger in the process goes through, before any handler or formatter sees the record.

>>> import logging
>>> with redacting_logs(lambda text: text.replace("s3cret", "<redacted>")):
...     record = logging.getLogger("httpcore.http11").makeRecord(
...         "x", logging.DEBUG, "f", 1, "cookie=%s", ("s3cret",), None)
>>> record.getMessage()
'cookie=<redacted>'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

Redactor = Callable[[str], str]

_lock = threading.Lock()
_active: list[Redactor] = []
_base_factory: Callable[..., logging.LogRecord] | None = None


def redact_text(text: str, redactors: list[Redactor] | None = None) -> str:
    """``text`` passed through every active redactor (or through ``redactors``)."""
    for redact in list(_active if redactors is None else redactors):
        text = redact(text)
    return text


def _scrub(record: logging.LogRecord) -> None:
    try:
        msg = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string is logging's own error to report, not ours
        return
    clean = redact_text(msg)
    if clean != msg:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:  # formatters reuse exc_text, so the traceback is scrubbed too
        text = logging.Formatter().formatException(record.exc_info)
        clean = redact_text(text)
        if clean != text:
            record.exc_text = clean
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _base_factory is not None
    record = _base_factory(*args, **kwargs)
    if _active:
        _scrub(record)
    return record


def _install() -> None:
    """Wrap the record factory once per process (and never unwrap: another library may have wrapped ours since;
    with no active redactor the wrapper only checks an empty list)."""
    global _base_factory
    if _base_factory is None:
        _base_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_factory)


class redacting_logs:  # noqa: N801 - used like a function: ``with redacting_logs(config.redact):``
    """While active, every log record of every logger has ``redact`` applied to its message and traceback.

    Use as a context manager, or ``start()`` / ``stop()`` for an object that lives longer than a block.
    """

    def __init__(self, redact: Redactor) -> None:
        self.redact = redact
        self._on = False

    def start(self) -> redacting_logs:
        with _lock:
            _install()
            if not self._on:
                _active.append(self.redact)
                self._on = True
        return self

    def stop(self) -> None:
        with _lock:
            if self._on:
                _active.remove(self.redact)
                self._on = False

    def __enter__(self) -> redacting_logs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
