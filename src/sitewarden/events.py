"""Security events as structured JSON lines on the ``sitewarden.events`` logger.

Every refusal sitewarden makes (and every decision taken in log-only mode) is one event, so
operators can alert on them and Fail2Ban-style tools can act on the log. Field names are
fixed: ``event`` (dotted name), ``time`` (Unix seconds), ``client``, ``host``, ``method``,
``path``, ``user`` and ``reason`` where they apply. No event ever carries a secret, a
cookie or a token.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["LOGGER_NAME", "emit", "logger"]

#: The logger that receives the events (one JSON object per message).
LOGGER_NAME = "sitewarden.events"
logger = logging.getLogger(LOGGER_NAME)


def emit(event: str, level: int = logging.WARNING, **fields: Any) -> None:
    """Log security event *event* with *fields* as one JSON line (cheap when disabled)."""
    if not logger.isEnabledFor(level):
        return
    record = {"event": event, "time": round(time.time(), 3)}
    record.update({k: v for k, v in fields.items() if v is not None})
    logger.log(level, json.dumps(record, ensure_ascii=False, default=str))
