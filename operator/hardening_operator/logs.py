"""Logging: one JSON object a line in a cluster, readable lines on a terminal.

Every record goes through structlog's formatter, Kopf's own included, so that a log
collector sees one format. Kopf's per-object loggers put the object in ``extra``
(``k8s_ref``), and the operator's own records do the same; it is lifted into
``namespace``, ``name`` and ``kind`` fields.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def _object_fields(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    record = event.get("_record")
    ref = getattr(record, "k8s_ref", None) if record is not None else None
    if isinstance(ref, dict):
        for key in ("namespace", "name", "kind"):
            if ref.get(key):
                event.setdefault(key, ref[key])
    return event


def configure(*, json_lines: bool | None = None, verbose: bool = False) -> None:
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    renderer: Any = (structlog.processors.JSONRenderer() if json_lines
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _object_fields,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # The HTTP client's per-request lines add nothing the operator does not log itself.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Kopf reports every handler call; the handlers here only queue work, so that is noise.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if verbose else logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
