"""Many paho-mqtt clients driven from one selector loop, no threads: per-device or pooled links."""

from __future__ import annotations

import heapq
import ipaddress
import resource
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from hardware.contract.topics import topic
from hardware.credentials import device_password

KEEPALIVE_S = 300  # the broker allows up to 600 (gridwatch's mosquitto.conf max_keepalive)
# Linux gives ~28,000 ephemeral ports per (source address, destination); past that a loopback
# fleet spreads its connections over more 127.x source addresses.
CONNECTIONS_PER_SOURCE = 25_000
MAX_CONNECTING = 90  # handshakes in flight while connecting; below the broker listen backlog (100)
MISC_SWEEP_S = 5.0  # every client's keepalive is checked at least this often


def raise_fd_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE to `wanted` if allowed (root may lift the hard limit); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard == resource.RLIM_INFINITY or hard >= wanted:
        attempts = [(wanted, hard)]
    else:
        attempts = [(wanted, wanted), (hard, hard)]
    for limits in attempts:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return limits[0]
        except (ValueError, OSError):
            continue
    return soft


FD_MARGIN = 256  # descriptors kept free for the process's own files, logs and the database


class FleetCapacityError(RuntimeError):
    """The machine cannot hold the asked-for connections; the message says what to change."""


@dataclass
class LinkStats:
    """What the links did: connections, failures, abrupt drops (Last Wills), publishes, acks."""

    connects: int = 0
    connect_failures: Counter = field(default_factory=Counter)
    disconnects: int = 0
    wills_triggered: int = 0
    publish_errors: int = 0
    acked: int = 0
    reconnects: int = 0


@dataclass(eq=False)
class _Link:
    client: mqtt.Client
    args: tuple = ()  # what open() was called with, to reconnect the same way
    retries: int = 0
    sock: socket.socket | None = None
    connected: bool = False
    failed: str | None = None
    # QoS 1 messages awaiting PUBACK, with the alarm msg_id they carry (None for others)
    pending: list[tuple[mqtt.MQTTMessageInfo, str | None]] = field(default_factory=list)


class LinkPool:
    """A set of MQTT connections served by one selector; each link is one paho client.

    paho is used without its network thread: publish() writes straight to the socket, a read
    event calls loop_read(), leftover output is flushed on write events, and loop_misc() runs
    for every link at least every MISC_SWEEP_S seconds so keepalive PINGs go out.
    """

    def __init__(
        self,
        host: str,
        port: int,
        on_ack: Callable[[str], None] | None = None,
        on_online: Callable[[int], None] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.selector = selectors.DefaultSelector()
        self.links: dict[int, _Link] = {}
        self.stats = LinkStats()
        self.on_ack = on_ack
        self.on_online = on_online
        self._misc_order: list[int] = []
        self._misc_pos = 0
        self._misc_t = time.monotonic()
        self._writing: set[int] = set()  # links with output the kernel has not taken yet
        self._retry: list[tuple[float, int, _Link]] = []  # (monotonic due, key, lost link)
        try:
            self._loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except (OSError, ValueError):
            self._loopback = False

    # ---- connecting ---------------------------------------------------------------------------

    def _source_address(self, key: int) -> str:
        block = key // CONNECTIONS_PER_SOURCE
        if not self._loopback or block == 0:
            return ""
        return f"127.0.{block // 250}.{1 + block % 250}"

    def open(
        self,
        key: int,
        client_id: str,
        username: str,
        password: str,
        will_topic: str | None = None,
    ) -> bool:
        """Open link `key` (TCP connect + CONNECT sent); CONNACK arrives through service()."""
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
            userdata=key,
        )
        client.username_pw_set(username, password)
        if will_topic:
            client.will_set(will_topic, b"offline", qos=1, retain=True)
        old = self.links.get(key)
        link = _Link(client, (key, client_id, username, password, will_topic))
        link.retries = old.retries if old is not None else 0
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        self.links[key] = link
        try:
            client.connect(
                self.host, self.port, KEEPALIVE_S, bind_address=self._source_address(key)
            )
        except OSError as exc:
            link.failed = exc.__class__.__name__
            self.stats.connect_failures[link.failed] += 1
            self._schedule_retry(key, link)
            return False
        self._misc_order.append(key)
        return True

    def connect_many(
        self,
        items: Sequence[tuple[int, str, str, str, str | None]],
        timeout_s: float = 300.0,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Open many links, keeping at most MAX_CONNECTING handshakes in flight."""
        raise_fd_limit(len(items) + len(self.links) + 1024)
        deadline = time.monotonic() + timeout_s
        waiting: list[int] = []
        i = 0
        while (i < len(items) or waiting) and time.monotonic() < deadline:
            while i < len(items) and len(waiting) < MAX_CONNECTING:
                key = items[i][0]
                if self.open(*items[i]):
                    waiting.append(key)
                i += 1
            self.service(0.01)
            waiting = [
                k
                for k in waiting
                if k in self.links and not self.links[k].connected and self.links[k].failed is None
            ]
            if progress is not None:
                progress(i - len(waiting), len(items))
        for k in waiting:
            self.stats.connect_failures["timeout"] += 1
            self.drop(k, clean=True)

    def _on_socket_open(self, client, key, sock) -> None:
        link = self.links.get(key)
        if link is not None:
            link.sock = sock
            self.selector.register(sock, selectors.EVENT_READ, key)

    def _on_socket_close(self, client, key, sock) -> None:
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        link = self.links.get(key)
        if link is not None and link.sock is sock:
            link.sock = None
            link.connected = False

    def _on_connect(self, client, key, flags, reason_code, properties) -> None:
        link = self.links.get(key)
        if link is None:
            return
        if reason_code.is_failure:
            link.failed = str(reason_code)
            self.stats.connect_failures[link.failed] += 1
            return
        link.connected = True
        link.retries = 0
        self.stats.connects += 1
        if self.on_online is not None:
            self.on_online(key)

    def _reap_acks(self, link: _Link) -> None:
        """Move acknowledged QoS 1 messages out of `pending` (paho marks them published).

        Polled rather than taken from on_publish: with an on_publish callback paho builds a
        ReasonCode and a Properties object for every QoS 0 message too, a third of the cost.
        """
        still = []
        for info, msg_id in link.pending:
            if info.is_published():
                if msg_id is not None:
                    self.stats.acked += 1
                    if self.on_ack is not None:
                        self.on_ack(msg_id)
            else:
                still.append((info, msg_id))
        link.pending = still

    def _on_disconnect(self, client, key, flags, reason_code, properties) -> None:
        self.stats.disconnects += 1
        link = self.links.get(key)
        if link is not None and link.client is client:
            # lost without our asking (broker restart, network, refused): a device retries
            link.connected = False
            self._schedule_retry(key, link)

    def _schedule_retry(self, key: int, link: _Link) -> None:
        """Reconnect later with exponential back-off (1 s doubling to 60 s, spread by key)."""
        delay = min(60.0, 2.0**link.retries) * (1.0 + (key % 97) / 194.0)
        link.retries += 1
        heapq.heappush(self._retry, (time.monotonic() + delay, key, link))

    def _run_retries(self) -> None:
        now = time.monotonic()
        while self._retry and self._retry[0][0] <= now:
            _, key, link = heapq.heappop(self._retry)
            if self.links.get(key) is link and not link.connected:  # not dropped or replaced
                self.stats.reconnects += 1
                self._forget(link)
                self.open(*link.args)

    def _forget(self, link: _Link) -> None:
        sock, link.sock = link.sock, None
        if sock is not None:
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()

    # ---- traffic ------------------------------------------------------------------------------

    def connected(self, key: int) -> bool:
        link = self.links.get(key)
        return link is not None and link.connected

    def publish(
        self,
        key: int,
        topic_: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        msg_id: str | None = None,
    ) -> bool:
        """Publish on link `key`; False when it is not connected or the write failed."""
        link = self.links.get(key)
        if link is None or not link.connected:
            return False
        info = link.client.publish(topic_, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.stats.publish_errors += 1
            return False
        if qos > 0:
            link.pending.append((info, msg_id))
            if len(link.pending) > 64:
                self._reap_acks(link)
        if link.client.want_write() and link.sock is not None:
            self._want_write(link, key, True)
        return True

    def _want_write(self, link: _Link, key: int, on: bool) -> None:
        if on:
            self._writing.add(key)
        else:
            self._writing.discard(key)
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        try:
            self.selector.modify(link.sock, events, key)
        except (KeyError, ValueError):
            pass

    def service(self, timeout: float) -> int:
        """Handle socket events for up to `timeout` seconds; returns how many were ready."""
        ready = self.selector.select(timeout) if self.links else []
        if not ready and timeout > 0 and not self.links:
            time.sleep(timeout)
        for selkey, events in ready:
            key = selkey.data
            link = self.links.get(key)
            if link is None:
                continue
            client = link.client
            if events & selectors.EVENT_READ:
                client.loop_read()
            if events & selectors.EVENT_WRITE and link.sock is not None:
                client.loop_write()
                if not client.want_write():
                    self._want_write(link, key, False)
        self._sweep_misc()
        if self._retry:
            self._run_retries()
        return len(ready)

    def _sweep_misc(self) -> None:
        """Run loop_misc over a slice of links so every link is visited every MISC_SWEEP_S."""
        order = self._misc_order
        if not order:
            return
        now = time.monotonic()
        share = int(len(order) * (now - self._misc_t) / MISC_SWEEP_S)
        if share <= 0:
            return
        self._misc_t = now
        for _ in range(min(share, len(order))):
            if self._misc_pos >= len(order):
                self._misc_pos = 0
                self._misc_order = order = [k for k in order if k in self.links]
                if not order:
                    return
            link = self.links.get(order[self._misc_pos])
            self._misc_pos += 1
            if link is not None and link.sock is not None:
                link.client.loop_misc()

    def pending_output(self) -> int:
        """Links with unsent bytes or unacknowledged QoS 1 messages."""
        busy = 0
        for link in self.links.values():
            if link.pending:
                self._reap_acks(link)
            busy += bool(link.pending or link.client.want_write())
        return busy

    def drain(self, timeout_s: float) -> bool:
        """Serve the sockets until every write is flushed and every QoS 1 message acknowledged."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.pending_output():
                return True
            self.service(0.02)
        return not self.pending_output()

    def backlog(self) -> int:
        """How many links hold output the kernel has not accepted yet (back-pressure)."""
        return len(self._writing)

    def drop(self, key: int, clean: bool) -> None:
        """Close link `key`: cleanly (DISCONNECT, no Will) or abruptly (the broker sends the Will)."""
        self._writing.discard(key)
        link = self.links.pop(key, None)
        if link is None:
            return
        client, sock = link.client, link.sock
        if sock is not None:
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            # Whatever was published is handed to the kernel, and what the broker sent is read,
            # so closing sends FIN, not RST (an RST would make the broker discard unread data).
            client.loop_write()
            client.loop_read()
            self._reap_acks(link)
        if clean and link.connected:
            client.disconnect()  # DISCONNECT first: the broker then discards the Will
        elif sock is not None:
            self.stats.wills_triggered += 1  # no DISCONNECT: the broker publishes the Will
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            sock.close()
        link.sock = None
        link.connected = False

    def close(self) -> None:
        for key in list(self.links):
            self.drop(key, clean=True)
        self.selector.close()


class PerDeviceLinks:
    """Each device on its own connection: user = its id, its own password, its own Last Will."""

    mode = "per-device"

    def __init__(self, host: str, port: int, secret: str, device_ids: Sequence[str]) -> None:
        self.secret = secret
        self.ids = device_ids
        self.pool = LinkPool(host, port, on_online=self._announce)
        self.on_state: Callable[[int, str], None] | None = None

    def _announce(self, dev: int) -> None:
        """A (re)connected device says it is online, retained, as its first message."""
        if self.pool.publish(dev, topic(self.ids[dev], "state"), b"online", qos=1, retain=True):
            if self.on_state is not None:
                self.on_state(dev, "online")

    def _item(self, dev: int) -> tuple[int, str, str, str, str]:
        device_id = self.ids[dev]
        return (
            dev,
            device_id,
            device_id,
            device_password(device_id, self.secret),
            topic(device_id, "state"),
        )

    def start(self, timeout_s: float, progress=None) -> None:
        need = len(self.ids) + FD_MARGIN
        have = raise_fd_limit(need)
        if have < need:
            raise FleetCapacityError(
                f"per-device mode needs {need:,} file descriptors (one connection per device) "
                f"but this process may open only {have:,} (RLIMIT_NOFILE hard limit). Raise it "
                "(ulimit -Hn / systemd LimitNOFILE=; the broker needs as many), or use pooled "
                "hub connections: --connections N"
            )
        self.pool.connect_many([self._item(i) for i in range(len(self.ids))], timeout_s, progress)

    def publish(
        self, dev: int, suffix: str, payload: bytes, qos: int, msg_id: str | None = None
    ) -> bool:
        return self.pool.publish(dev, topic(self.ids[dev], suffix), payload, qos, msg_id=msg_id)

    def go_offline(self, dev: int) -> None:
        """Power cut: drop the TCP connection without DISCONNECT, so the broker sends the Will."""
        self.pool.drop(dev, clean=False)

    def go_online(self, dev: int) -> None:
        """Power back: reconnect; the device announces itself once the broker accepts it."""
        self.pool.open(*self._item(dev))

    def stop(self, drain_s: float) -> None:
        for dev in list(self.pool.links):
            if self.pool.connected(dev):
                sent = self.pool.publish(
                    dev, topic(self.ids[dev], "state"), b"offline", qos=1, retain=True
                )
                if sent and self.on_state is not None:
                    self.on_state(dev, "offline")
        self.pool.drain(drain_s)
        self.pool.close()


class PooledLinks:
    """A few hub-credential connections publishing on behalf of many devices (benchmarks).

    Honest about what it is not: devices share connections, so there are no per-device
    credentials or Last Wills; going offline/online is announced by explicit retained state
    messages instead of the broker's Will.
    """

    mode = "pooled"

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        device_ids: Sequence[str],
        connections: int,
    ) -> None:
        self.ids = device_ids
        self.user, self.password = user, password
        self.n = max(1, connections)
        self.pool = LinkPool(host, port)
        self.online_links = 0
        self.on_state: Callable[[int, str], None] | None = None

    def start(self, timeout_s: float, progress=None) -> None:
        tag = f"{time.time_ns() % 10**9:x}"
        items = [(j, f"gw-fleet-{tag}-{j}", self.user, self.password, None) for j in range(self.n)]
        self.pool.connect_many(items, timeout_s, progress)
        for dev in range(len(self.ids)):
            self._state(dev, b"online")
            if dev % 256 == 0:
                self.pool.service(0)

    def _state(self, dev: int, state: bytes) -> None:
        if self.pool.publish(
            dev % self.n, topic(self.ids[dev], "state"), state, qos=1, retain=True
        ):
            if self.on_state is not None:
                self.on_state(dev, state.decode())

    def publish(
        self, dev: int, suffix: str, payload: bytes, qos: int, msg_id: str | None = None
    ) -> bool:
        return self.pool.publish(
            dev % self.n, topic(self.ids[dev], suffix), payload, qos, msg_id=msg_id
        )

    def go_offline(self, dev: int) -> None:
        self._state(dev, b"offline")

    def go_online(self, dev: int) -> None:
        self._state(dev, b"online")

    def stop(self, drain_s: float) -> None:
        for dev in range(len(self.ids)):
            self._state(dev, b"offline")
            if dev % 256 == 0:
                self.pool.service(0)
        self.pool.drain(drain_s)
        self.pool.close()
