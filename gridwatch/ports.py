"""Who holds a local TCP port: sockets read from /proc/net/tcp{,6}, owners found via /proc/*/fd."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# Kernel TCP states (include/net/tcp_states.h) as /proc/net/tcp writes them, in hex.
TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}
MAX_SOCKET_LINES = 1_000_000  # bound the scan of a busy host's socket table


@dataclass(frozen=True)
class PortUser:
    """One socket bound to the port and, when this user may see it, the process holding it."""

    state: str
    address: str
    uid: int
    pid: int | None = None
    command: str | None = None

    def describe(self) -> str:
        user = _user_name(self.uid)
        if self.pid is None:
            return (
                f"a process of user {user} that this user may not inspect ({self.state} "
                f"{self.address}; `ss -ltnp` as root names it)"
            )
        return f"{self.command or '?'} (pid {self.pid}, user {user}, {self.state} {self.address})"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _ipv4(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)[::-1]  # the kernel prints the 32-bit word in host (little) order
    return ".".join(str(b) for b in raw)


def _ipv6(hex_addr: str) -> str:
    words = [bytes.fromhex(hex_addr[i : i + 8])[::-1] for i in range(0, 32, 8)]
    raw = b"".join(words)
    groups = [f"{int.from_bytes(raw[i : i + 2], 'big'):x}" for i in range(0, 16, 2)]
    text = ":".join(groups)
    if text == "0:0:0:0:0:0:0:0":
        return "[::]"
    if text.startswith("0:0:0:0:0:ffff:"):
        return ".".join(str(b) for b in raw[12:])
    return f"[{text}]"


def parse_proc_net_tcp(text: str, port: int, v6: bool = False) -> list[tuple[int, PortUser]]:
    """(inode, socket) for every socket in a /proc/net/tcp{,6} table whose local port is `port`."""
    found: list[tuple[int, PortUser]] = []
    for n, line in enumerate(text.splitlines()[1:]):
        if n >= MAX_SOCKET_LINES:
            break
        fields = line.split()
        if len(fields) < 10 or ":" not in fields[1]:
            continue
        addr_hex, port_hex = fields[1].rsplit(":", 1)
        try:
            if int(port_hex, 16) != port:
                continue
            address = _ipv6(addr_hex) if v6 else _ipv4(addr_hex)
            uid, inode = int(fields[7]), int(fields[9])
        except ValueError:
            continue
        state = TCP_STATES.get(fields[3].upper(), fields[3])
        found.append((inode, PortUser(state, f"{address}:{port}", uid)))
    return found


def _socket_owners(inodes: set[int]) -> dict[int, int]:
    """inode -> pid for the sockets among `inodes` whose process this user may look into."""
    owners: dict[int, int] = {}
    wanted = {f"socket:[{i}]": i for i in inodes if i}
    if not wanted:
        return owners
    for proc in PROC.iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in os.scandir(proc / "fd"):
                inode = wanted.get(os.readlink(fd.path))
                if inode is not None:
                    owners.setdefault(inode, int(proc.name))
        except OSError:  # gone meanwhile, or another user's process
            continue
        if len(owners) == len(wanted):
            break
    return owners


def _command(pid: int) -> str | None:
    try:
        return (PROC / str(pid) / "comm").read_text().strip() or None
    except OSError:
        return None


def port_users(port: int) -> list[PortUser]:
    """Every TCP socket on this host whose local port is `port` (listening ones first)."""
    sockets: list[tuple[int, PortUser]] = []
    for name, v6 in (("tcp", False), ("tcp6", True)):
        try:
            text = (PROC / "net" / name).read_text()
        except OSError:
            continue
        sockets += parse_proc_net_tcp(text, port, v6)
    owners = _socket_owners({inode for inode, _ in sockets})
    users = []
    for inode, user in sockets:
        pid = owners.get(inode)
        if pid is not None:
            user = PortUser(user.state, user.address, user.uid, pid, _command(pid))
        users.append(user)
    return sorted(users, key=lambda u: (u.state != "LISTEN", u.state, u.address))


# States of a socket that keep a server from binding the port. Closing sockets a stopped server
# left behind (FIN_WAIT*, TIME_WAIT, ...) do not: PostgreSQL and Mosquitto bind with SO_REUSEADDR.
# An outgoing connection (ESTABLISHED, SYN_SENT, CLOSE_WAIT) that drew the port as its local port
# does: that is what happens to a port inside the ephemeral range.
HOLDING = ("LISTEN", "ESTABLISHED", "SYN_SENT", "CLOSE_WAIT")


def _holds(user: PortUser, host: str) -> bool:
    address = user.address.rsplit(":", 1)[0]
    return user.state in HOLDING and address in (host, "0.0.0.0", "[::]")


def port_blocked(port: int, host: str = "127.0.0.1") -> bool:
    """True when a live socket on host:port (or the wildcard) keeps a server from binding it."""
    return any(_holds(u, host) for u in port_users(port))


def describe_port_holder(port: int, host: str = "127.0.0.1") -> str:
    """Who holds `port`, for an error message: the listener (or other socket) and its process."""
    users = [u for u in port_users(port) if _holds(u, host)]
    if not users:
        return "another program (not visible from here: another network namespace?)"
    first = users[0].describe()
    more = f" and {len(users) - 1} more socket(s)" if len(users) > 1 else ""
    return first + more


def ephemeral_range() -> tuple[int, int]:
    """The range the kernel picks outgoing connections' local ports from."""
    try:
        low, high = (PROC / "sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_local_port(low: int = 10_000, tries: int = 200) -> int:
    """A port free on 127.0.0.1 now and outside the ephemeral range, for a server started later
    (tests' and benchmarks' own services). A port from the ephemeral range (what binding port 0
    gives) can be drawn by any outgoing connection before the server binds it."""
    import random
    import socket

    start, end = ephemeral_range()
    high = start - 1 if start > low + 1000 else 65_535
    if high == 65_535:  # an odd kernel range: take what lies above it
        low = max(low, end + 1)
    if low > high:  # the whole range is ephemeral: the kernel's pick is all there is
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(tries):
        port = random.randint(low, high)
        if port_blocked(port):
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port found in {low}-{high} after {tries} tries")
