"""Input types shared by the routers: times only as RFC 3339 text (never a bare number)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?)?$"
)


def _rfc3339_only(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value.strip()):
        raise ValueError("must be an RFC 3339 time such as 2026-11-01T08:00:00+08:00")
    return value.strip()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339_only), AfterValidator(_aware)]
"""A time given as RFC 3339 text; without an offset it is taken as UTC."""
