"""MANSCDP XML bodies of GB/T 28181 (2016 and 2022): bounded decoding in GB2312/GB18030 or
UTF-8, the fields the gateway reads, and the queries and answers it writes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

MAX_BODY_BYTES = 65_536
MAX_DEPTH = 8
MAX_ELEMENTS = 20_000
MAX_ITEMS = 1_000  # catalog items in one message
CHINA_TZ = timezone(timedelta(hours=8))  # GB/T 28181 times carry no offset: Beijing time
_DECL = re.compile(
    rb"^\s*<\?xml[^>]{0,200}?encoding\s*=\s*[\"']([A-Za-z0-9_-]{1,32})[\"'][^>]{0,200}\?>"
)
_ANY_DECL = re.compile(r"^\s*<\?xml[^>]{0,400}\?>")
_GB = {"gb2312", "gbk", "gb18030", "gb_2312-80", "euc-cn", "cp936"}
ROOTS = ("Notify", "Response", "Query", "Control")


class BodyError(ValueError):
    """A MANSCDP body that cannot be read; the reason says why."""


def decode(body: bytes, charset: str | None = None) -> tuple[str, str]:
    """(text, encoding used). The XML declaration wins over the Content-Type charset; GB2312 and
    GBK are read as GB18030 (their superset). Devices that declare one encoding and send the
    other are common, so the other is tried before giving up."""
    if len(body) > MAX_BODY_BYTES:
        raise BodyError(f"body of {len(body)} bytes > {MAX_BODY_BYTES}")
    m = _DECL.match(body)
    declared = (m.group(1).decode().lower() if m else None) or charset or "utf-8"
    first = "gb18030" if declared in _GB else "utf-8"
    if first == "utf-8" and declared not in ("utf-8", "utf8"):
        raise BodyError(f"encoding {declared!r} not supported (GB2312, GBK, GB18030 or UTF-8)")
    for enc in (first, "gb18030" if first == "utf-8" else "utf-8"):
        try:
            return body.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise BodyError(f"body is neither valid {first} nor its alternative")


def _depth_ok(root: ET.Element) -> None:
    stack = [(root, 1)]
    count = 0
    while stack:
        el, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise BodyError(f"XML nested deeper than {MAX_DEPTH}")
        if count > MAX_ELEMENTS:
            raise BodyError(f"more than {MAX_ELEMENTS} XML elements")
        stack.extend((child, depth + 1) for child in el)


@dataclass
class Body:
    """A parsed MANSCDP body: root (Notify/Response/Query/Control), CmdType, SN, DeviceID."""

    root: str
    cmd_type: str
    sn: str
    device_id: str
    el: ET.Element
    encoding: str

    def text(self, path: str, el: ET.Element | None = None) -> str | None:
        node = (el if el is not None else self.el).find(path)
        if node is None or node.text is None:
            return None
        value = node.text.strip()
        return value or None


# A flat body (keepalives, status answers): an optional plain declaration, a root of ROOTS and
# elements holding plain ASCII text only: no attributes, entities, comments, CDATA or control
# characters. Every such body is well-formed XML that the full parser reads the same way, so
# it is read here without building an XML parser (most of a keepalive's cost); anything else
# goes through the full parser and its checks.
_FLAT = re.compile(
    rb'\A[ \t\r\n]*(?:<\?xml version="1\.0"(?: encoding="([A-Za-z0-9_-]{1,32})")?[ ]?\?>)?'
    rb"[ \t\r\n]*<(Notify|Response|Query|Control)>[ \t\r\n]*"
    rb"((?:<([A-Za-z][A-Za-z0-9]{0,31})>[^<>&\x00-\x1f\x7f]{0,256}</\4>[ \t\r\n]*){1,32})"
    rb"</\2>[ \t\r\n]*\Z"
)
_FLAT_FIELD = re.compile(rb"<([A-Za-z][A-Za-z0-9]{0,31})>([^<]*)</")
_SN = re.compile(r"[0-9]{1,10}")
_DEVICE_ID = re.compile(r"[0-9]{20}")


def _flat(body: bytes, charset: str | None) -> Body | None:
    """A flat ASCII body read without an XML parser; None: not one (use the full parser)."""
    if len(body) > 4096 or not body.isascii():
        return None
    m = _FLAT.match(body)
    if m is None:
        return None
    declared = (m.group(1).decode().lower() if m.group(1) else None) or charset or "utf-8"
    if declared in _GB:
        enc = "gb18030"
    elif declared in ("utf-8", "utf8"):
        enc = "utf-8"
    else:
        return None  # the full parser says why the encoding is refused
    root = ET.Element(m.group(2).decode())
    for name, value in _FLAT_FIELD.findall(m.group(3)):
        ET.SubElement(root, name.decode()).text = value.decode()
    return Body(root.tag, "", "", "", root, enc)


def parse(body: bytes, charset: str | None = None) -> Body:
    """Decode and parse a body (no DTD, no entities, bounded depth and size)."""
    flat = _flat(body, charset)
    if flat is not None:
        return _checked(flat)
    text, enc = decode(body, charset)
    text = _ANY_DECL.sub("", text, count=1)
    try:
        root = fromstring(text)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise BodyError(f"not well-formed MANSCDP XML: {exc}") from None
    _depth_ok(root)
    if root.tag not in ROOTS:
        raise BodyError(f"root element {root.tag[:32]!r} is not one of {', '.join(ROOTS)}")
    return _checked(Body(root.tag, "", "", "", root, enc))


def _checked(out: Body) -> Body:
    """CmdType, SN and DeviceID read and checked."""
    out.cmd_type = out.text("CmdType") or ""
    out.sn = out.text("SN") or ""
    out.device_id = out.text("DeviceID") or ""
    if not out.cmd_type:
        raise BodyError("CmdType missing")
    if not _SN.fullmatch(out.sn):
        raise BodyError(f"SN {out.sn[:16]!r} is not 1-10 digits")
    if not _DEVICE_ID.fullmatch(out.device_id):
        raise BodyError(f"DeviceID {out.device_id[:24]!r} is not 20 digits")
    return out


def gb_time(value: str | None) -> datetime | None:
    """A GB/T 28181 time (2024-05-01T08:30:00[.fff], Beijing time unless it has an offset)."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=CHINA_TZ)


def _float(value: str | None) -> float | None:
    try:
        v = float(value) if value is not None else None
    except ValueError:
        return None
    return v if v is not None and v == v and abs(v) != float("inf") else None


def lon_lat(body: Body, el: ET.Element | None = None) -> tuple[float, float] | None:
    """Longitude/Latitude when both are present, in range and not the 0/0 of 'not set'."""
    lon, lat = _float(body.text("Longitude", el)), _float(body.text("Latitude", el))
    if lon is None or lat is None or (lon == 0 and lat == 0):
        return None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        return None
    return lon, lat


# --------------------------------------------------------------------------- catalog


@dataclass
class CatalogItem:
    """One channel (or sub-device) of a catalog answer or notification."""

    device_id: str
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    civil_code: str | None = None
    address: str | None = None
    parent_id: str | None = None
    status: str | None = None  # ON / OFF
    position: tuple[float, float] | None = None
    event: str | None = None  # ADD / DEL / UPDATE / ON / OFF / VLOST / DEFECT (notifications)
    extra: dict = field(default_factory=dict)


def catalog(body: Body) -> tuple[int, list[CatalogItem]]:
    """(SumNum, items) of a Catalog Response or Notify."""
    total = body.text("SumNum")
    sum_num = int(total) if total and total.isdigit() and len(total) < 7 else 0
    items: list[CatalogItem] = []
    device_list = body.el.find("DeviceList")
    for el in device_list if device_list is not None else []:
        if el.tag != "Item":
            continue
        if len(items) >= MAX_ITEMS:
            raise BodyError(f"more than {MAX_ITEMS} items in one catalog message")
        dev = body.text("DeviceID", el) or ""
        if not re.fullmatch(r"[0-9]{20}", dev):
            continue
        status = (body.text("Status", el) or "").upper() or None
        items.append(
            CatalogItem(
                device_id=dev,
                name=(body.text("Name", el) or "")[:200] or None,
                manufacturer=(body.text("Manufacturer", el) or "")[:200] or None,
                model=(body.text("Model", el) or "")[:200] or None,
                civil_code=(body.text("CivilCode", el) or "")[:12] or None,
                address=(body.text("Address", el) or "")[:200] or None,
                parent_id=(body.text("ParentID", el) or "")[:200] or None,
                status=status if status in ("ON", "OFF", "ONLINE", "OFFLINE") else None,
                position=lon_lat(body, el),
                event=(body.text("Event", el) or "").upper() or None,
            )
        )
    return sum_num, items


# --------------------------------------------------------------------------- writing bodies


def xml_body(root: str, fields: list[tuple[str, str]], encoding: str = "GB2312") -> bytes:
    """A flat MANSCDP body, e.g. xml_body('Query', [('CmdType', 'Catalog'), ...])."""
    inner = "".join(f"<{k}>{escape(v)}</{k}>\r\n" for k, v in fields)
    text = f'<?xml version="1.0" encoding="{encoding}"?>\r\n<{root}>\r\n{inner}</{root}>\r\n'
    return text.encode("gb18030" if encoding.lower() in _GB else "utf-8")


def query(cmd_type: str, sn: int, device_id: str, encoding: str = "GB2312") -> bytes:
    return xml_body(
        "Query", [("CmdType", cmd_type), ("SN", str(sn)), ("DeviceID", device_id)], encoding
    )


def answer(cmd_type: str, sn: str, device_id: str, encoding: str = "GB2312") -> bytes:
    """<Response> with Result OK, as the platform answers an Alarm notification."""
    return xml_body(
        "Response",
        [("CmdType", cmd_type), ("SN", sn), ("DeviceID", device_id), ("Result", "OK")],
        encoding,
    )
