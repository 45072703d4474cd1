"""GB/T 28181 device and channel codes: parse, validate, describe, compose and allocate 20-digit IDs."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

Edition = Literal[2016, 2022]
EDITIONS: tuple[int, ...] = (2016, 2022)
DEFAULT_EDITION: Edition = 2022
DIGITS = frozenset("0123456789")
PROVINCES_FILE = Path(__file__).resolve().parent / "data" / "gbt2260_provinces.json"

# A lookup of real divisions: a callable taking a 6-digit code (e.g. "360121", or "360100" for a
# city) and answering whether it exists, or a collection of 6- or 12-digit codes (e.g. the
# regions table) from which city and county prefixes are derived.
DivisionLookup = Callable[[str], bool] | Collection[str]

# Field positions, 1-based inclusive, as the standard numbers the digits.
FIELDS: dict[str, tuple[int, int]] = {
    "province": (1, 2),
    "city": (3, 4),
    "county": (5, 6),
    "unit": (7, 8),
    "industry": (9, 10),
    "type": (11, 13),
    "network": (14, 14),
    "serial": (15, 20),
}
FIELD_LABELS = {
    "province": "province code",
    "city": "city code",
    "county": "county code",
    "unit": "grassroots unit",
    "industry": "industry code",
    "type": "type code",
    "network": "network identifier",
    "serial": "serial number",
}


class GbIdError(ValueError):
    """A code that is not a valid GB/T 28181 ID, saying which digits are wrong and why."""

    def __init__(self, code: str, reason: str, field: str | None = None) -> None:
        self.code = code
        self.field = field
        self.reason = reason
        if field is not None:
            start, end = FIELDS[field]
            span = f"digit {start}" if start == end else f"digits {start}-{end}"
            value = code[start - 1 : end]
            message = f"{code!r}: {span} ({FIELD_LABELS[field]}) {value!r}: {reason}"
        else:
            message = f"{code!r}: {reason}"
        super().__init__(message)


# --- reference tables (GB/T 28181-2016 Appendix D and GB/T 28181-2022 Appendix E) -------------

_TYPES_COMMON: dict[int, str] = {
    111: "DVR (digital video recorder)",
    112: "video server",
    113: "encoder",
    114: "decoder",
    115: "video switching matrix",
    116: "audio switching matrix",
    117: "alarm controller",
    118: "NVR (network video recorder)",
    130: "HVR (hybrid video recorder)",
    131: "camera",
    132: "IP camera",
    133: "monitor (display)",
    134: "alarm input device (infrared, smoke, door sensor)",
    135: "alarm output device (alarm light, bell)",
    136: "voice input device",
    137: "voice output device",
    138: "mobile transmission device",
    139: "other peripheral",
    200: "central SIP (signalling) server",
    201: "web application server",
    203: "proxy server",
    204: "security server",
    205: "alarm server",
    206: "database server",
    207: "GIS server",
    208: "management server",
    209: "access gateway",
    210: "media storage server",
    211: "signalling security routing gateway",
    215: "business group",
    216: "virtual organisation",
    300: "centre user",
    400: "terminal user",
}
TYPE_CODES: dict[int, dict[int, str]] = {
    # DESIGN §5.1: the 2016 edition also names 119 as HVR (130 stays HVR in both editions).
    2016: {**_TYPES_COMMON, 119: "HVR (hybrid video recorder)", 202: "media distribution server"},
    2022: {
        **_TYPES_COMMON,
        120: "online video-image collection system",
        121: "video checkpoint (卡口)",
        122: "multi-lens camera",
        123: "parking entrance/exit control device",
        124: "personnel entrance/exit control device",
        125: "security-inspection device",
        140: "relay/trigger alarm output device",
        141: "barrier gate (vehicle)",
        142: "smart door (personnel)",
        143: "credential reader",
        500: "integrated video-image application platform (signalling server)",
        501: "video-image O&M management platform (signalling server)",
        502: "video-image analysis system",
        503: "video-image database",
        505: "video-image analysis device",
    },
}
# Every well-formed type code belongs to one family; codes inside a family's range that the
# edition does not assign are extension codes: accepted, but flagged as unassigned.
TYPE_FAMILIES: tuple[tuple[int, int, str], ...] = (
    (111, 130, "front-end main device"),
    (131, 199, "front-end peripheral"),
    (200, 299, "platform device"),
    (300, 399, "centre user"),
    (400, 499, "terminal user"),
    (500, 599, "external platform server"),
    (600, 999, "extension type"),
)

_INDUSTRY_COMMON: dict[int, str] = {
    0: "public order: roads (城市路面、商业街、公共区域、重点区域)",
    1: "public order: communities (社区、楼宇、网吧)",
    2: "public order: internal",
    3: "public order: other",
    4: "traffic: roads",
    5: "traffic: checkpoints",
    6: "traffic: internal",
    7: "traffic: other",
    8: "city management",
    9: "health and environment",
    10: "inspection and customs",
    11: "education",
    40: "agriculture, forestry, husbandry, fishery",
    41: "mining",
    42: "manufacturing",
    43: "metallurgy",
    44: "electric power",
    45: "gas",
    46: "construction",
    47: "logistics",
    48: "postal services",
    49: "information technology",
    50: "hotels and catering",
    51: "finance",
    52: "real estate",
    53: "business services",
    54: "water conservancy",
    55: "entertainment",
}
INDUSTRY_CODES: dict[int, dict[int, str]] = {
    2016: dict(_INDUSTRY_COMMON),
    2022: {**_INDUSTRY_COMMON, 12: "civil aviation", 13: "railways", 14: "shipping"},
}
INDUSTRY_RANGES: tuple[tuple[int, int, str], ...] = (
    (0, 39, "government (reserved)"),
    (40, 79, "enterprises and institutions (reserved)"),
    (80, 89, "residents' own systems"),
    (90, 99, "other owners"),
)

NETWORK_CODES: dict[int, dict[int, str]] = {
    2016: {
        **{n: "monitoring/alarm private network" for n in range(5)},
        5: "public security information network",
        6: "government network",
        7: "internet",
        8: "social-resource access network",
        9: "reserved",
    },
    2022: {
        0: "police video transmission network",
        1: "police video transmission network",
        2: "industry private network",
        3: "political-legal information network",
        4: "police mobile information network",
        5: "public security information network",
        6: "e-government extranet",
        7: "internet / public network",
        8: "dedicated line",
        9: "reserved",
    },
}


@lru_cache(maxsize=1)
def _province_data() -> dict:
    return json.loads(PROVINCES_FILE.read_text("utf-8"))


def province_names() -> dict[str, tuple[str, str]]:
    """The 34 GB/T 2260 province-level codes -> (English name, Chinese name)."""
    return dict(_province_names())


@lru_cache(maxsize=1)
def _province_names() -> dict[str, tuple[str, str]]:
    return {k: (v[0], v[1]) for k, v in _province_data()["provinces"].items()}


# --- models ------------------------------------------------------------------------------------


class DivisionCode(BaseModel):
    """A division-only code of 2, 4, 6 or 8 digits (province, city, county, grassroots unit)."""

    model_config = ConfigDict(frozen=True)

    code: str
    level: Literal["province", "city", "county", "grassroots unit"]
    province: str
    province_name: str
    city: str | None = None
    county: str | None = None
    unit: str | None = None
    checked_against: Literal["structure", "lookup"] = "structure"


class DeviceId(BaseModel):
    """A decoded 20-digit GB/T 28181 device or channel ID, read under one edition of the standard."""

    model_config = ConfigDict(frozen=True)

    code: str
    edition: int
    province: str
    province_name: str
    city: str
    county: str
    unit: str
    centre_level: Literal["province", "city", "county", "grassroots unit"]
    division_code: str
    industry: str
    industry_meaning: str
    type_code: int
    type_meaning: str
    type_family: str
    type_assigned: bool
    network: int
    network_meaning: str
    serial: str
    checked_against: Literal["structure", "lookup"] = "structure"

    @property
    def centre_code(self) -> str:
        """Digits 1-8: the centre code (division code + grassroots unit)."""
        return self.code[:8]

    def __str__(self) -> str:
        return self.code


# --- validation --------------------------------------------------------------------------------


def _lookup_function(known: DivisionLookup | None) -> Callable[[str], bool] | None:
    if known is None:
        return None
    if callable(known):
        return known
    prefixes: set[str] = set()
    for raw in known:
        code = str(raw)[:6]
        if len(code) == 6:
            prefixes.update((code, code[:4] + "00", code[:2] + "0000"))
    return prefixes.__contains__


def _check_digits(code: str, allowed_lengths: tuple[int, ...]) -> None:
    if len(code) not in allowed_lengths:
        lengths = ", ".join(str(n) for n in allowed_lengths[:-1])
        lengths = f"{lengths} or {allowed_lengths[-1]}" if lengths else str(allowed_lengths[-1])
        raise GbIdError(code, f"has {len(code)} characters; expected {lengths} digits")
    if code.isascii() and code.isdigit():
        return
    bad = [i + 1 for i, ch in enumerate(code) if ch not in DIGITS]
    if bad:
        where = ", ".join(str(i) for i in bad[:8]) + (" ..." if len(bad) > 8 else "")
        raise GbIdError(code, f"position(s) {where} are not ASCII digits 0-9")


def _check_division(code: str, known: DivisionLookup | None) -> Literal["structure", "lookup"]:
    """Check digits 1-6 (as far as present) name a real division; returns how it was checked.

    Always: the province must be one of the 34 GB/T 2260 province-level codes. With a lookup,
    the city (pp cc 00) and county (pp cc nn) must exist in it. Without one, only the structure
    of GB/T 2260 is checked: city 00 (province-level centre), 01-70 (prefecture-level cities,
    prefectures, leagues) or 90 (county-level units directly under the province); the four
    municipalities only use 01-02; Taiwan, Hong Kong and Macau have no city codes; a county
    under city 00 must be 00. A structurally valid code may still not exist: pass a lookup
    (e.g. the regions table) for a real check.
    """
    data = _province_data()
    province = code[:2]
    if province not in data["provinces"]:
        raise GbIdError(
            code,
            "is not a GB/T 2260 province-level code (11-15, 21-23, 31-37, 41-46, "
            "50-54, 61-65, 71, 81, 82)",
            "province",
        )
    if len(code) < 4:
        return "structure"
    city = code[2:4]
    county = code[4:6] if len(code) >= 6 else None
    lookup = _lookup_function(known)
    if province in data["no_subdivisions"] and city != "00":
        raise GbIdError(code, "this province-level region has no city codes (only 00)", "city")
    if province in data["municipalities"] and city not in ("00", "01", "02"):
        raise GbIdError(code, "a municipality's city code is 00, 01 or 02", "city")
    if not (city == "00" or "01" <= city <= "70" or city == "90"):
        raise GbIdError(code, "is not a GB/T 2260 city code (allowed 00, 01-70, 90)", "city")
    if county is not None and city == "00" and county != "00":
        raise GbIdError(code, "a province-level centre (city 00) must have county 00", "county")
    if lookup is None or city == "00":
        return "structure" if lookup is None else "lookup"
    if not lookup(province + city + "00"):
        raise GbIdError(code, f"city {province + city}00 is not in the division list", "city")
    if county is not None and county != "00" and not lookup(province + city + county):
        raise GbIdError(
            code, f"county {province + city + county} is not in the division list", "county"
        )
    return "lookup"


def _level(
    city: str, county: str, unit: str
) -> Literal["province", "city", "county", "grassroots unit"]:
    if city == "00":
        return "province"
    if county == "00":
        return "city"
    if unit == "00":
        return "county"
    return "grassroots unit"


def _check_edition(edition: int) -> Edition:
    if edition not in EDITIONS:
        raise ValueError(f"edition: {edition!r} is not a GB/T 28181 edition (allowed 2016, 2022)")
    return edition  # type: ignore[return-value]


def type_meaning(type_code: int, edition: int = DEFAULT_EDITION) -> tuple[str, str, bool]:
    """(meaning, family, assigned) of a type code under an edition; ValueError outside 111-999."""
    _check_edition(edition)
    for low, high, family in TYPE_FAMILIES:
        if low <= type_code <= high:
            meaning = TYPE_CODES[edition].get(type_code)
            if meaning is not None:
                return meaning, family, True
            return f"unassigned {family} type (extension range {low}-{high})", family, False
    raise ValueError(
        f"type code: {type_code:03d} is not a GB/T 28181 type code (allowed 111-999: "
        "111-130 front-end main, 131-199 peripheral, 200-299 platform, 300-399 centre user, "
        "400-499 terminal user, 500-599 external platform, 600-999 extension)"
    )


def industry_meaning(industry: int, edition: int = DEFAULT_EDITION) -> str:
    """Meaning of a two-digit industry code under an edition (ranges for reserved codes)."""
    _check_edition(edition)
    meaning = INDUSTRY_CODES[edition].get(industry)
    if meaning is not None:
        return meaning
    for low, high, label in INDUSTRY_RANGES:
        if low <= industry <= high:
            return label
    raise ValueError(f"industry code: {industry} is outside 00-99")


def network_meaning(network: int, edition: int = DEFAULT_EDITION) -> str:
    """Meaning of the network identifier (digit 14) under an edition."""
    return NETWORK_CODES[_check_edition(edition)][network]


# --- parsing -----------------------------------------------------------------------------------


def parse_division(code: str, known: DivisionLookup | None = None) -> DivisionCode:
    """Parse a division-only code of 2, 4, 6 or 8 digits."""
    code = code.strip()
    _check_digits(code, (2, 4, 6, 8))
    checked = _check_division(code, known)
    parts = [code[i : i + 2] for i in range(0, len(code), 2)]
    levels = ("province", "city", "county", "grassroots unit")
    return DivisionCode(
        code=code,
        level=levels[len(parts) - 1],  # type: ignore[arg-type]
        province=parts[0],
        province_name=_province_names()[parts[0]][0],
        city=parts[1] if len(parts) > 1 else None,
        county=parts[2] if len(parts) > 2 else None,
        unit=parts[3] if len(parts) > 3 else None,
        checked_against=checked,
    )


def parse_device_id(
    code: str, edition: int = DEFAULT_EDITION, known: DivisionLookup | None = None
) -> DeviceId:
    """Parse and validate a 20-digit ID, naming every field as read under `edition`."""
    edition = _check_edition(edition)
    code = code.strip()
    _check_digits(code, (20,))
    checked = _check_division(code, known)
    type_code = int(code[10:13])
    try:
        t_meaning, family, assigned = type_meaning(type_code, edition)
    except ValueError:
        raise GbIdError(
            code,
            "is not a GB/T 28181 type code (allowed 111-999: 111-130 front-end main, "
            "131-199 peripheral, 200-299 platform, 300-399 centre user, 400-499 terminal "
            "user, 500-599 external platform, 600-999 extension)",
            "type",
        ) from None
    industry = int(code[8:10])
    network = int(code[13])
    return DeviceId(
        code=code,
        edition=edition,
        province=code[0:2],
        province_name=_province_names()[code[0:2]][0],
        city=code[2:4],
        county=code[4:6],
        unit=code[6:8],
        centre_level=_level(code[2:4], code[4:6], code[6:8]),
        division_code=code[:6],
        industry=code[8:10],
        industry_meaning=industry_meaning(industry, edition),
        type_code=type_code,
        type_meaning=t_meaning,
        type_family=family,
        type_assigned=assigned,
        network=network,
        network_meaning=network_meaning(network, edition),
        serial=code[14:20],
        checked_against=checked,
    )


def parse_code(
    code: str, edition: int = DEFAULT_EDITION, known: DivisionLookup | None = None
) -> DeviceId | DivisionCode:
    """Parse any GB/T 28181 code: 20 digits -> DeviceId; 2/4/6/8 digits -> DivisionCode."""
    stripped = code.strip()
    if len(stripped) == 20:
        return parse_device_id(stripped, edition, known)
    if len(stripped) in (2, 4, 6, 8):
        return parse_division(stripped, known)
    _check_digits(stripped, (2, 4, 6, 8, 20))
    raise AssertionError("unreachable")  # pragma: no cover


def is_device_id(code: str, edition: int = DEFAULT_EDITION) -> bool:
    """True when `code` is a valid 20-digit ID (structural division check)."""
    try:
        parse_device_id(code, edition)
    except (GbIdError, ValueError):
        return False
    return True


# --- composing and allocating ------------------------------------------------------------------


def _centre_code(region: str) -> str:
    region = region.strip()
    if len(region) == 12 and set(region) <= DIGITS:
        region = region[:6]  # a 12-digit statistical code: its county part is the centre
    _check_digits(region, (2, 4, 6, 8))
    return region.ljust(8, "0")


def compose(
    region: str,
    type_code: int,
    serial: int,
    *,
    industry: int = 0,
    network: int = 0,
    edition: int = DEFAULT_EDITION,
    known: DivisionLookup | None = None,
) -> DeviceId:
    """Build and validate an ID from its parts; `region` is a 2-8 or 12-digit division code."""
    if not 0 <= industry <= 99:
        raise ValueError(f"industry: {industry} is outside 00-99")
    if not 0 <= network <= 9:
        raise ValueError(f"network: {network} is outside 0-9")
    if not 0 <= serial <= 999_999:
        raise ValueError(f"serial: {serial} is outside 000000-999999")
    if not 0 <= type_code <= 999:
        raise ValueError(f"type code: {type_code} is outside 111-999")
    code = f"{_centre_code(region)}{industry:02d}{type_code:03d}{network}{serial:06d}"
    return parse_device_id(code, edition, known)


def allocate_ids(
    region: str,
    type_code: int,
    count: int = 1,
    existing: Iterable[str] = (),
    *,
    industry: int = 0,
    network: int = 0,
    edition: int = DEFAULT_EDITION,
    known: DivisionLookup | None = None,
) -> list[DeviceId]:
    """Allocate `count` new IDs in a region for a type, never reusing a serial in `existing`.

    Serials are taken lowest-free-first from 000001 within the 14-digit prefix (centre,
    industry, type, network); IDs with other prefixes do not constrain the allocation.
    """
    if count < 1:
        raise ValueError(f"count: {count} must be at least 1")
    first = compose(
        region, type_code, 1, industry=industry, network=network, edition=edition, known=known
    )
    prefix = first.code[:14]
    used = {c.strip()[14:] for c in existing if c.strip()[:14] == prefix}
    out: list[DeviceId] = []
    serial = 0
    while len(out) < count:
        serial += 1
        if serial > 999_999:
            raise ValueError(
                f"count: only {len(out)} free serials left under prefix {prefix} "
                f"(000001-999999), {count} asked"
            )
        text = f"{serial:06d}"
        if text not in used:
            out.append(first.model_copy(update={"code": prefix + text, "serial": text}))
    return out
