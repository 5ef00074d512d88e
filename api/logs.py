"""Logging for every conflictkb process: readable lines on a terminal, or one JSON object
per line for a log collector (CONFLICTKB_LOG_FORMAT=json), each carrying the id of the
request it was written for.

The request id lives in a context variable that api/observability.py sets for the whole
of a request, so every line written while answering it, by our code, uvicorn or any
library, carries it, with no logger needing to know. The
same configuration (a `logging.config.dictConfig` document) is applied by the command
line and by uvicorn in each worker process (`serve --workers N` starts them afresh).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS

LogFormat = Literal["text", "json"]

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Libraries that narrate at INFO what an operator does not need: their warnings only.
_QUIET = ("pgserver", "alembic.runtime.plugins")


class RequestContext(logging.Filter):
    """Puts the current request's id (or None, outside a request) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [request id]`, for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        return f"{line} [request {record.request_id}]" if getattr(record, "request_id", None) else line


def logging_config(level: str, log_format: LogFormat) -> dict[str, Any]:
    """The dictConfig document: one handler on stderr in the chosen format; uvicorn's own
    access lines off (api/observability.py writes one per request, with more in it)."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestContext}},
        "formatters": {
            "text": {"()": TextFormatter},
            # a line is {"timestamp": ISO 8601 UTC, "level", "logger", "message", "pid", "request_id",
            # then the record's own fields (an access line's route, status, duration_ms...)}
            "json": {"()": "pythonjsonlogger.orjson.OrjsonFormatter",
                     "fmt": "{levelname}{name}{message}{process}", "style": "{", "timestamp": True,
                     "rename_fields": {"levelname": "level", "name": "logger", "process": "pid"},
                     # uvicorn's copy of its message with terminal colours
                     "reserved_attrs": [*RESERVED_ATTRS, "color_message"]},
        },
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": log_format, "filters": ["request"]}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's loggers come with handlers of their own: through ours instead
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            **{name: {"level": "WARNING"} for name in _QUIET},
        },
    }


def configure_logging(level: str, log_format: LogFormat) -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level, log_format))
