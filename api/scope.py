"""Region scope: a 12-digit division code covers every code below it (prefix by level)."""

from __future__ import annotations

import re

from hardware.region_code import RegionCode

CODE_RE = re.compile(r"^[0-9]{12}$")


def region_prefix(code: str) -> str:
    """The significant prefix of a 12-digit division code: 2 province, 4 city, 6 county, 9 township, 12 village."""
    if not CODE_RE.match(code):
        raise ValueError(
            f"region code {code!r}: must be 12 digits (GB/T 2260 + township + village)"
        )
    return RegionCode(code).prefix


def region_range(code: str) -> tuple[str, str]:
    """(lowest, highest) 12-digit code inside a region: an index-friendly BETWEEN filter."""
    region_prefix(code)  # refuses what is not a 12-digit code
    return RegionCode(code).range


def covers(scope_code: str, region_code: str | None) -> bool:
    """True when region_code lies inside (or is) scope_code."""
    if not region_code:
        return False
    return region_code.startswith(region_prefix(scope_code))


def covered_by_any(scopes: list[str], region_code: str | None) -> bool:
    """True when any scope covers region_code."""
    return any(covers(s, region_code) for s in scopes)


def intersect_scope(scopes: list[str] | None, requested: str | None) -> list[str] | None:
    """Regions a query may see: the request narrowed to the user's scopes (None = everywhere).

    Returns [] when the request lies outside every scope (the caller answers with nothing or 403).
    """
    if scopes is None:
        return [requested] if requested else None
    if requested is None:
        return list(scopes)
    inside = [requested] if covered_by_any(scopes, requested) else []
    # a request above a scope (e.g. the city while assigned one county) narrows to the scopes in it
    inside += [s for s in scopes if covers(requested, s) and s != requested]
    return inside


def scope_sql(
    column: str, scopes: list[str] | None, name: str = "sc"
) -> tuple[str, dict[str, str]]:
    """An SQL condition keeping rows whose `column` lies in any scope (TRUE for None, FALSE for [])."""
    if scopes is None:
        return "TRUE", {}
    if not scopes:
        return "FALSE", {}
    parts, params = [], {}
    for i, code in enumerate(scopes):
        lo, hi = region_range(code)
        parts.append(f"{column} BETWEEN :{name}lo{i} AND :{name}hi{i}")
        params[f"{name}lo{i}"] = lo
        params[f"{name}hi{i}"] = hi
    return "(" + " OR ".join(parts) + ")", params
