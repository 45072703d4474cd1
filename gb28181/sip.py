"""A small, strict SIP (RFC 3261) message parser and writer: bounded sizes, counted headers,
Content-Length checked. Enough of SIP for GB/T 28181 signalling, nothing more."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 32_768  # GB/T 28181 devices split catalogs well below this; TCP too
MAX_HEADERS = 64
MAX_HEADER_LINE = 2_048
MAX_START_LINE = 1_024
METHODS = frozenset(
    {
        "REGISTER",
        "MESSAGE",
        "NOTIFY",
        "SUBSCRIBE",
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "INFO",
    }
)
COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "e": "content-encoding",
    "k": "supported",
    "s": "subject",
    "o": "event",
}
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_STATUS = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2}) ([^\r\n]*)$")
_REQUEST = re.compile(r"^([A-Z]{2,16}) (\S{1,512}) SIP/2\.0$")
_URI_USER = re.compile(r"sips?:([^@;>\s]+)@([^;>\s]+)")
_TAG = re.compile(r";\s*tag=([^;>\s]+)", re.IGNORECASE)
REQUIRED = ("via", "from", "to", "call-id", "cseq")
_NAMES: dict[str, str] = {}  # header names as written -> lower-case, compact forms expanded


class SipError(ValueError):
    """A message that is not acceptable SIP; `status` is the response a request deserves."""

    def __init__(self, reason: str, status: int = 400) -> None:
        self.status = status
        super().__init__(reason)


@dataclass
class SipMessage:
    """One parsed SIP request or response (headers kept in order, names lower-cased)."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    first: dict[str, str] = field(default_factory=dict)  # name -> first value (fast lookups)
    _cseq: tuple[int, str] | None = field(default=None, repr=False, compare=False)

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header (case-insensitive; compact forms understood)."""
        if self.first:
            return self.first.get(name.lower(), default)
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise SipError(f"missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self.require("call-id")

    @property
    def cseq(self) -> tuple[int, str]:
        if self._cseq is not None:  # read once by parse()
            return self._cseq
        raw = self.require("cseq").split()
        if len(raw) != 2 or not raw[0].isdigit() or len(raw[0]) > 10:
            raise SipError(f"bad CSeq {self.get('cseq')!r}")
        self._cseq = int(raw[0]), raw[1].upper()
        return self._cseq

    def from_user(self) -> str:
        """The user part of the From URI (a GB/T 28181 device id)."""
        return uri_user(self.require("from"))

    def from_tag(self) -> str | None:
        m = _TAG.search(self.require("from"))
        return m.group(1) if m else None

    def to_tag(self) -> str | None:
        m = _TAG.search(self.require("to"))
        return m.group(1) if m else None

    def content_type(self) -> str:
        return (self.get("content-type") or "").split(";")[0].strip().lower()

    def charset(self) -> str | None:
        m = re.search(r"charset\s*=\s*\"?([A-Za-z0-9_-]{1,32})", self.get("content-type") or "")
        return m.group(1).lower() if m else None


def uri_user(header_value: str) -> str:
    """The user part of the first sip: URI in a From/To/Contact value; SipError if none."""
    m = _URI_USER.search(header_value)
    if not m:
        raise SipError(f"no sip:user@host URI in {header_value[:80]!r}")
    return m.group(1)


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    end = data.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end = data.find(b"\n\n")  # bare LF is tolerated by RFC 3261 §7.5 implementations
        sep = 2
    if end < 0:
        raise SipError("no blank line after the headers")
    return data[:end], data[end + sep :]


def parse(data: bytes, *, stream: bool = False) -> SipMessage:
    """Parse one whole SIP message. Content-Length must match the body (required on streams)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipError(f"message of {len(data)} bytes > {MAX_MESSAGE_BYTES}", 513)
    data = data.lstrip(b"\r\n")
    head, body = _split_head(data)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipError("headers are not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0]
    if len(start) > MAX_START_LINE:
        raise SipError("start line too long")
    msg = SipMessage()
    if start.startswith("SIP/2.0 "):
        m = _STATUS.match(start)
        if not m:
            raise SipError(f"bad status line {start[:80]!r}")
        msg.status, msg.reason = int(m.group(1)), m.group(2)
    else:
        m = _REQUEST.match(start)
        if not m:
            raise SipError(f"bad request line {start[:80]!r}")
        if m.group(1) not in METHODS:
            raise SipError(f"method {m.group(1)} not supported", 405)
        msg.method, msg.uri = m.group(1), m.group(2)
        if not msg.uri.lower().startswith(("sip:", "sips:")):
            raise SipError(f"request URI {msg.uri[:80]!r} is not a sip: URI", 416)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if len(line) > MAX_HEADER_LINE:
            raise SipError("header line too long")
        if line[:1] in (" ", "\t"):  # folded continuation (RFC 3261 §7.3.1)
            if not headers:
                raise SipError("continuation line before any header")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise SipError(f"bad header line {line[:80]!r}")
        key = _NAMES.get(name)
        if key is None:  # checked once per spelling, not per message
            stripped = name.strip()
            if not _TOKEN.match(stripped):
                raise SipError(f"bad header line {line[:80]!r}")
            key = COMPACT.get(stripped.lower(), stripped.lower())
            if len(_NAMES) < 1_024:
                _NAMES[name] = key
        headers.append((key, value.strip()))
        if len(headers) > MAX_HEADERS:
            raise SipError(f"more than {MAX_HEADERS} headers")
    msg.headers = headers
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name, value)
    msg.first = first
    for name in REQUIRED:
        if name not in first:
            raise SipError(f"missing {name} header")
    msg.cseq  # noqa: B018 - validates (and keeps) the CSeq
    lengths = msg.get_all("content-length")
    if len(lengths) > 1:
        raise SipError("more than one Content-Length")
    if lengths:
        raw = lengths[0]
        if not raw.isdigit() or len(raw) > 6:
            raise SipError(f"bad Content-Length {raw[:20]!r}")
        length = int(raw)
        if length > len(body):
            raise SipError(f"Content-Length {length} but only {len(body)} body bytes")
        if len(body) > length:
            raise SipError(f"{len(body) - length} bytes after the body (Content-Length {length})")
    elif stream:
        raise SipError("Content-Length is required over TCP")
    msg.body = body
    return msg


class StreamFramer:
    """Cuts a TCP byte stream into whole SIP messages by Content-Length, bounded in size."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Append bytes; the complete messages now available. SipError when the stream is bad."""
        self.buffer += data
        out = []
        while True:
            while self.buffer[:2] == b"\r\n":  # keep-alive CRLFs (RFC 5626)
                del self.buffer[:2]
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_MESSAGE_BYTES:
                    raise SipError("headers exceed the message size limit", 513)
                return out
            head = bytes(self.buffer[:end])
            m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,7})[ \t]*$", head)
            if not m:
                raise SipError("Content-Length is required over TCP")
            total = end + 4 + int(m.group(1))
            if total > MAX_MESSAGE_BYTES:
                raise SipError(f"message of {total} bytes > {MAX_MESSAGE_BYTES}", 513)
            if len(self.buffer) < total:
                return out
            out.append(bytes(self.buffer[:total]))
            del self.buffer[:total]


# --------------------------------------------------------------------------- writing messages


_random = bytearray()


def new_tag() -> str:
    """12 hex digits from the OS's CSPRNG (RFC 3261 §19.3), drawn 4 KiB at a time: one
    getrandom() call per 680 answers instead of one per answer."""
    global _random
    if len(_random) < 6:
        _random = bytearray(secrets.token_bytes(4_096))
    tag = _random[-6:].hex()
    del _random[-6:]
    return tag


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def serialize(start: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """Start line, headers (Content-Length added), blank line, body."""
    lines = [start]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def response(
    req: SipMessage,
    status: int,
    reason: str,
    extra: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    to_tag: str | None = None,
) -> bytes:
    """A response to `req`: Via/From/Call-ID/CSeq copied, To given a tag when it had none."""
    headers = [("Via", v) for v in req.get_all("via")]
    headers.append(("From", req.require("from")))
    to = req.require("to")
    if req.to_tag() is None and status > 100:
        to = f"{to};tag={to_tag or new_tag()}"
    headers.append(("To", to))
    headers.append(("Call-ID", req.call_id))
    headers.append(("CSeq", req.require("cseq")))
    headers.extend(extra or [])
    return serialize(f"SIP/2.0 {status} {reason}", headers, body)
