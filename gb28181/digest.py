"""SIP MD5 digest authentication (RFC 2617 / 3261 §22): stateless expiring nonces, response
checks, and a per-address limiter for wrong passwords."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import OrderedDict
from dataclasses import dataclass

NONCE_TTL_S = 300.0
_PARAM = re.compile(
    r'\s*([A-Za-z0-9_-]{1,32})\s*=\s*("(?:[^"\\]|\\.){0,512}"|[^\s,]{0,512})\s*(?:,|$)'
)


class DigestError(ValueError):
    """An Authorization header that cannot be checked."""


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - SIP digest is MD5


def ha1(user: str, realm: str, password: str) -> str:
    """MD5(user:realm:password), what a server may store instead of the password."""
    return md5_hex(f"{user}:{realm}:{password}")


def parse_authorization(value: str) -> dict[str, str]:
    """The parameters of a `Digest ...` Authorization header, bounded (at most 16)."""
    if len(value) > 2048:
        raise DigestError("Authorization header too long")
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"scheme {scheme[:16]!r} is not Digest")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            raise DigestError("malformed Digest parameters")
        key, val = m.group(1).lower(), m.group(2)
        if val.startswith('"'):
            val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[key] = val
        if len(params) > 16:
            raise DigestError("too many Digest parameters")
        pos = m.end()
    for need in ("username", "realm", "nonce", "uri", "response"):
        if need not in params:
            raise DigestError(f"Digest parameter {need} missing")
    if params.get("algorithm", "MD5").upper() != "MD5":
        raise DigestError(f"algorithm {params['algorithm'][:16]} not supported (MD5 only)")
    return params


def expected_response(params: dict[str, str], method: str, ha1_hex: str) -> str:
    ha2 = md5_hex(f"{method}:{params['uri']}")
    qop = params.get("qop")
    if qop:
        if qop != "auth":
            raise DigestError(f"qop {qop[:16]} not supported")
        if "nc" not in params or "cnonce" not in params:
            raise DigestError("qop=auth needs nc and cnonce")
        return md5_hex(f"{ha1_hex}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
    return md5_hex(f"{ha1_hex}:{params['nonce']}:{ha2}")


def parse_challenge(value: str) -> dict[str, str]:
    """realm, nonce (and qop, opaque...) of a WWW-Authenticate: Digest challenge."""
    filled = value + ', username="x", uri="x", response="x"'
    return parse_authorization(filled)


def authorization(
    challenge: dict[str, str], method: str, uri: str, user: str, password: str, nc: int = 1
) -> str:
    """The Authorization value answering a challenge (a client's side: a device, or the hub
    registering with an upper platform); qop=auth when the challenge offers it."""
    secret = ha1(user, challenge["realm"], password)
    parts = [
        f'Digest username="{user}"',
        f'realm="{challenge["realm"]}"',
        f'nonce="{challenge["nonce"]}"',
        f'uri="{uri}"',
    ]
    qops = [q.strip() for q in challenge.get("qop", "").split(",")]
    params = {"uri": uri, "nonce": challenge["nonce"]}
    if "auth" in qops:
        params |= {"qop": "auth", "nc": f"{nc:08x}", "cnonce": hashlib.sha256(
            f"{time.time()}{nc}".encode()).hexdigest()[:16]}  # fmt: skip
        parts += ["qop=auth", f"nc={params['nc']}", f'cnonce="{params["cnonce"]}"']
    parts.append(f'response="{expected_response(params, method, secret)}"')
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    parts.append("algorithm=MD5")
    return ", ".join(parts)


class Nonces:
    """Nonces that carry their own issue time and an HMAC, so any gateway process (or the same
    one after a restart) can check them without keeping state; they expire after `ttl_s`."""

    def __init__(self, secret: str, ttl_s: float = NONCE_TTL_S) -> None:
        self.key = hashlib.sha256(("gb28181-nonce:" + secret).encode()).digest()
        self.ttl_s = ttl_s

    def _mac(self, stamp: str) -> str:
        return hmac.new(self.key, stamp.encode(), hashlib.sha256).hexdigest()[:24]

    def issue(self, now: float | None = None) -> str:
        stamp = f"{int((now if now is not None else time.time()) * 1000):x}"
        return f"{stamp}{self._mac(stamp)}"

    def check(self, nonce: str, now: float | None = None) -> str:
        """'ok', 'stale' (ours but expired) or 'bad' (not ours)."""
        if len(nonce) < 25 or len(nonce) > 48:
            return "bad"
        stamp, mac = nonce[:-24], nonce[-24:]
        if not hmac.compare_digest(mac, self._mac(stamp)):
            return "bad"
        try:
            issued = int(stamp, 16) / 1000
        except ValueError:
            return "bad"
        now = now if now is not None else time.time()
        if issued > now + 5 or now - issued > self.ttl_s:
            return "stale"
        return "ok"


@dataclass
class _Window:
    started: float
    failures: int
    blocked_until: float = 0.0


class FailureLimiter:
    """Wrong passwords counted per source address: after `limit` within `window_s` the address
    is refused for `block_s` without its credentials being checked. Bounded in memory."""

    def __init__(
        self,
        limit: int = 5,
        window_s: float = 60.0,
        block_s: float = 60.0,
        max_addresses: int = 65_536,
    ) -> None:
        self.limit, self.window_s, self.block_s = limit, window_s, block_s
        self.max_addresses = max_addresses
        self._by_addr: OrderedDict[str, _Window] = OrderedDict()
        self.total_failures = 0
        self.total_blocked = 0

    def blocked(self, addr: str, now: float | None = None) -> bool:
        now = now if now is not None else time.monotonic()
        w = self._by_addr.get(addr)
        if w is not None and w.blocked_until > now:
            self.total_blocked += 1
            return True
        return False

    def failure(self, addr: str, now: float | None = None) -> None:
        now = now if now is not None else time.monotonic()
        self.total_failures += 1
        w = self._by_addr.get(addr)
        if w is None or now - w.started > self.window_s:
            w = _Window(now, 0)
            self._by_addr[addr] = w
        self._by_addr.move_to_end(addr)
        w.failures += 1
        if w.failures >= self.limit:
            w.blocked_until = now + self.block_s
        while len(self._by_addr) > self.max_addresses:
            self._by_addr.popitem(last=False)

    def failures(self, addr: str) -> int:
        w = self._by_addr.get(addr)
        return w.failures if w else 0
