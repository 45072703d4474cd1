"""Log hygiene: no credential ever lands in a log line, whatever a client puts in its URL."""

from __future__ import annotations

import logging
import re

# query parameters that carry credentials, and bearer tokens wherever they appear
SECRET_PARAM = re.compile(r"(?i)((?:access_token|token|password|ticket|csrf_token)=)[^&\s\"']+")
BEARER = re.compile(r"(?i)(bearer\s+|gw1\.)[A-Za-z0-9._~+/=-]{8,}")


def redact(text: str) -> str:
    """The text with credential values replaced by '***'."""
    return BEARER.sub(lambda m: m.group(1) + "***", SECRET_PARAM.sub(r"\1***", text))


class RedactSecrets(logging.Filter):
    """Rewrites each record's message and arguments (uvicorn's access log formats the URL as an
    argument) before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_log_redaction() -> None:
    """Attach the filter to uvicorn's loggers and the root logger of this process (idempotent)."""
    for name in ("uvicorn.access", "uvicorn.error", ""):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
