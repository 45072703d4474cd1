"""Local services manager: a project-local PostGIS cluster and Mosquitto under GRIDWATCH_HOME."""

from __future__ import annotations

import fcntl
import functools
import glob
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from gridwatch.ports import describe_port_holder, port_blocked
from gridwatch.settings import Settings, get_settings

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """A local service could not be started, stopped or checked; the message says how to fix it."""


@dataclass
class ServiceStatus:
    """What `gridwatch services status` reports for one service."""

    name: str
    running: bool
    managed: bool
    endpoint: str
    detail: str


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


_held_locks: dict[str, tuple[int, IO[str]]] = {}
_locks_guard = threading.RLock()


@contextmanager
def service_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive file lock so concurrent processes never start or stop a service at once.

    Re-entrant within a process (restart = stop + start); other processes wait for it.
    """
    key = str(path)
    with _locks_guard:
        depth, handle = _held_locks.get(key, (0, None))
        if depth == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")
            fcntl.flock(handle, fcntl.LOCK_EX)
        _held_locks[key] = (depth + 1, handle)
        try:
            yield
        finally:
            depth, handle = _held_locks[key]
            if depth == 1:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
                del _held_locks[key]
            else:
                _held_locks[key] = (depth - 1, handle)


def locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a service's lifecycle method under that service's lock file."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        with service_lock(self.lock_path):
            return method(self, *args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- PostGIS


def pg_bindir() -> Path | None:
    """Directory of the newest installed PostgreSQL server binaries, if any."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(candidates[-1]).parent if candidates else None


def postgis_installed(bindir: Path | None = None) -> bool:
    """True when the PostGIS extension files exist for that PostgreSQL version."""
    bindir = bindir or pg_bindir()
    if bindir is None:
        return False
    version = bindir.parent.name
    return bool(glob.glob(f"/usr/share/postgresql/{version}/extension/postgis.control"))


class LocalService:
    """What the local PostGIS and Mosquitto share: a port, a lock, restart and status."""

    name = "service"
    port: int
    lock_path: Path

    def running(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def status_detail(self) -> str:
        raise NotImplementedError

    @locked
    def restart(self) -> None:
        """Stop then start (fault-injection tests use this)."""
        self.stop()
        self.start()

    def status(self) -> ServiceStatus:
        return ServiceStatus(
            name=self.name,
            running=self.running(),
            managed=True,
            endpoint=f"127.0.0.1:{self.port}",
            detail=self.status_detail(),
        )


class LocalPostgres(LocalService):
    """A PostGIS cluster whose data lives in GRIDWATCH_HOME/pg, run as the `postgres` user when root."""

    name = "postgis"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.root = self.settings.home / "pg"
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log = self.root / "postgres.log"
        self.port = self.settings.pg_port
        self.lock_path = self.settings.home / ".pg.lock"

    # -- helpers
    def _run_as(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        return ["runuser", "-u", "postgres", "--"]

    def _owner(self) -> tuple[int, int]:
        if os.geteuid() != 0:
            return os.getuid(), os.getgid()
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ServiceError(
                "there is no 'postgres' system user; install PostgreSQL: "
                "apt-get install postgresql postgresql-15-postgis-3"
            ) from exc
        return entry.pw_uid, entry.pw_gid

    def _bindir(self) -> Path:
        bindir = pg_bindir()
        if bindir is None:
            raise ServiceError(
                "PostgreSQL server binaries not found under /usr/lib/postgresql; "
                "install them: apt-get install postgresql postgresql-15-postgis-3 (or run ./gw)"
            )
        if not postgis_installed(bindir):
            raise ServiceError(
                f"PostGIS is not installed for PostgreSQL {bindir.parent.name}; "
                f"install it: apt-get install postgresql-{bindir.parent.name}-postgis-3"
            )
        return bindir

    def _make_traversable(self) -> None:
        """Let the postgres user reach the data directory (o+x on ancestors, nothing more)."""
        if os.geteuid() != 0:
            return
        path = self.root.resolve()
        for parent in [*reversed(path.parents)]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)

    @property
    def pidfile(self) -> Path:
        return self.data / "postmaster.pid"

    def running(self) -> bool:
        pid = _read_pid(self.pidfile)
        return pid is not None and _pid_alive(pid) and port_open("127.0.0.1", self.port)

    # -- lifecycle
    def init(self) -> bool:
        """Create the cluster if absent; refuse a data directory from another major version."""
        bindir = self._bindir()
        version_file = self.data / "PG_VERSION"
        if version_file.exists():
            found = version_file.read_text().strip()
            if found != bindir.parent.name:
                raise ServiceError(
                    f"{self.data} holds a PostgreSQL {found} cluster but PostgreSQL "
                    f"{bindir.parent.name} is installed; it was left untouched. Install "
                    f"postgresql-{found} or move the directory away (gridwatch services down; "
                    f"mv {self.data} {self.data}.v{found}) to start a fresh one."
                )
            return False
        if self.data.exists() and any(self.data.iterdir()):
            raise ServiceError(
                f"{self.data} exists but is not a PostgreSQL cluster (no PG_VERSION); it was left "
                f"untouched. Move it away to let gridwatch create a fresh cluster."
            )
        uid, gid = self._owner()
        self.root.mkdir(parents=True, exist_ok=True)
        self._make_traversable()
        for path in (self.root, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, uid, gid)
        # Password authentication (scram-sha-256) for every connection, socket or TCP, with the
        # password generated into GRIDWATCH_HOME/secrets.json; the file initdb reads it from is
        # readable by the cluster's owner only and removed at once.
        from gridwatch.secrets import load_secrets

        pwfile = self.root / ".pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(load_secrets(self.settings.home)["pg_password"] + "\n")
        os.chown(pwfile, uid, gid)
        cmd = [
            *self._run_as(),
            str(bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "gridwatch",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True)
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ServiceError(f"initdb failed:\n{result.stderr.strip()}")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# gridwatch local cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 200\n"
                "shared_buffers = 256MB\n"
                "synchronous_commit = on\n"
                "fsync = on\n"
                "log_min_messages = warning\n"
            )
        return True

    @locked
    def start(self, timeout: float = 60.0) -> None:
        """Start the cluster (idempotent); clear a stale PID file left by a crash."""
        if self.running():
            return
        bindir = self._bindir()
        self.init()
        self._make_traversable()
        pid = _read_pid(self.pidfile)
        if pid is not None and not _pid_alive(pid):
            # A crash left postmaster.pid behind; PostgreSQL copes, but say so.
            pass
        if port_open("127.0.0.1", self.port) or port_blocked(self.port):
            raise ServiceError(
                f"port {self.port} is already in use by {describe_port_holder(self.port)}, so the "
                f"local PostGIS cannot start. Stop that, or choose another port: "
                f"export GRIDWATCH_PG_PORT={self.port + 1}"
            )
        uid, gid = self._owner()
        self.log.touch(exist_ok=True)
        os.chown(self.log, uid, gid)
        cmd = [
            *self._run_as(),
            str(bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            # Write-heavy ingest: checkpoints by time rather than every ~500 MB of WAL (each one
            # starts a burst of full-page images, a latency spike at 30,000 msg/s), and those
            # images compressed. Given here, not in postgresql.conf, so existing clusters get it.
            f"-p {self.port} -k {self.socket_dir} -c max_wal_size=4GB "
            "-c checkpoint_timeout=15min -c wal_compression=lz4 "
            # Federation (federation/): a county publishes to its city by logical replication;
            # a city runs one apply worker per county. A slot a city stopped reading keeps at
            # most 16 GB of WAL, then is given up (the county's disk matters more).
            "-c wal_level=logical -c max_replication_slots=32 -c max_wal_senders=32 "
            "-c max_logical_replication_workers=32 -c max_worker_processes=48 "
            "-c max_slot_wal_keep_size=16GB",
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (
                self.log.read_text(errors="replace").splitlines()[-15:] if self.log.exists() else []
            )
            raise ServiceError(
                "PostgreSQL did not start:\n"
                + result.stderr.strip()
                + "\n--- last lines of "
                + str(self.log)
                + " ---\n"
                + "\n".join(tail)
            )

    @locked
    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster if it runs."""
        if not self.pidfile.exists():
            return
        bindir = self._bindir()
        subprocess.run(
            [
                *self._run_as(),
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                mode,
                "-w",
                "stop",
            ],
            capture_output=True,
            text=True,
        )

    def status_detail(self) -> str:
        return str(self.data)


# --------------------------------------------------------------------------- Mosquitto


def mosquitto_binary() -> Path | None:
    """Path of the mosquitto broker binary, if installed."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    return Path(found) if found else None


def plugin_path() -> Path | None:
    """mosquitto_dynamic_security.so from Debian's mosquitto package, if installed."""
    for pattern in (
        "/usr/lib/*/mosquitto_dynamic_security.so",
        "/usr/lib/mosquitto_dynamic_security.so",
        "/usr/local/lib/mosquitto_dynamic_security.so",
    ):
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    return None


class BrokerAccounts(Protocol):
    """The broker's accounts, roles and ACL, given by their owner (ingest.broker_acl.DynsecAccounts,
    which reads the devices and the wire contract): the core runs Mosquitto but knows no device,
    role or topic, so whoever starts or reloads the broker passes them in."""

    def write_state(self, state: Path, acl: Path) -> None:
        """Write the dynamic-security plugin's state file and the static ACL (broker stopped)."""
        ...

    def sync(self) -> None:
        """Bring the running broker's accounts in line with the database."""
        ...


class LocalMosquitto(LocalService):
    """A Mosquitto broker in GRIDWATCH_HOME/mqtt: its config, the dynamic-security plugin's state
    (every account and role, from `accounts`) and the static per-device pattern ACL.

    Starting and reloading need `accounts` (ingest.broker_acl.local_broker() makes a broker with
    them); stopping and status do not."""

    name = "mosquitto"

    def __init__(
        self, settings: Settings | None = None, accounts: BrokerAccounts | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self.accounts = accounts
        self.root = self.settings.home / "mqtt"
        self.conf = self.root / "mosquitto.conf"
        self.dynsec = self.root / "dynamic-security.json"
        self.acl = self.root / "acl"
        self.pidfile = self.root / "mosquitto.pid"
        self.log = self.root / "mosquitto.log"
        self.data = self.root / "data"
        self.port = self.settings.mqtt_port
        self.lock_path = self.settings.home / ".mqtt.lock"

    def pid(self) -> int | None:
        """The running broker's PID: from its PID file, else found by its command line.

        Two concurrent starts make the losing mosquitto exit and delete the PID file the
        winner wrote (as can a user); without it stop, restart and reload would miss the
        broker that still runs with this config, so the file is written again."""
        pid = _read_pid(self.pidfile)
        if pid is not None and _pid_alive(pid):
            return pid
        conf = str(self.conf).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"mosquitto") and conf in argv:
                self.pidfile.write_text(f"{proc.name}\n")
                return int(proc.name)
        return None

    def running(self) -> bool:
        return self.pid() is not None and port_open("127.0.0.1", self.port)

    def _accounts(self, doing: str) -> BrokerAccounts:
        if self.accounts is None:
            raise ServiceError(
                f"cannot {doing} the broker without its accounts: make it with "
                "ingest.broker_acl.local_broker(settings)"
            )
        return self.accounts

    def write_config(self) -> None:
        """Write mosquitto.conf, the plugin's state and the ACL (from `accounts`), broker stopped."""
        accounts = self._accounts("configure")
        plugin = plugin_path()
        if plugin is None:
            raise ServiceError(
                "mosquitto_dynamic_security.so not found; it ships with Debian's mosquitto "
                "package: apt-get install mosquitto"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.data.mkdir(parents=True, exist_ok=True)
        accounts.write_state(self.dynsec, self.acl)
        self.passwd_legacy_cleanup()
        self.conf.write_text(
            "# written by gridwatch; edit GRIDWATCH_* settings instead\n"
            "per_listener_settings false\n"
            f"listener {self.port} 127.0.0.1\n"
            "protocol mqtt\n"
            f"{self.tls_listener()}"
            "allow_anonymous false\n"
            f"plugin {plugin}\n"
            f"plugin_opt_config_file {self.dynsec}\n"
            f"acl_file {self.acl}\n"
            "persistence true\n"
            f"persistence_location {self.data}/\n"
            "autosave_interval 30\n"
            f"pid_file {self.pidfile}\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "connection_messages false\n"
            f"max_packet_size {max_packet_size(self.settings)}\n"
            "max_inflight_messages 1000\n"
            "max_queued_messages 1000000\n"
            "max_keepalive 600\n"
            "user root\n"
            # a bridge to the city hub, written by `gridwatch federation join` (federation/)
            + (
                f"include_dir {self.root / 'bridge.d'}\n"
                if (self.root / "bridge.d").is_dir()
                else ""
            )
        )

    def tls_listener(self) -> str:
        """The device listener over TLS (GRIDWATCH_MQTT_TLS_PORT), with the certificate HTTPS
        uses; empty when none is asked for. Plain MQTT stays on loopback only."""
        port = self.settings.mqtt_tls_port
        if not port:
            return ""
        from gridwatch.tls import tls_files

        files = tls_files(self.settings)
        if files is None:
            raise ServiceError(
                f"GRIDWATCH_MQTT_TLS_PORT={port} needs a certificate: set GRIDWATCH_TLS=local "
                "(the hub's local CA) or GRIDWATCH_TLS_CERT and GRIDWATCH_TLS_KEY"
            )
        if port_open("127.0.0.1", port) and not self.running():
            raise ServiceError(
                f"port {port} is already in use by {describe_port_holder(port)}, so the broker's "
                f"TLS listener cannot open. Choose another: export GRIDWATCH_MQTT_TLS_PORT={port + 1}"
            )
        return (
            f"listener {port} {self.settings.mqtt_tls_host}\n"
            "protocol mqtt\n"
            f"certfile {files.cert}\n"
            f"keyfile {files.key}\n"
            "tls_version tlsv1.2\n"
        )

    def passwd_legacy_cleanup(self) -> None:
        """Remove the password file older versions wrote (every device's hash, no longer read)."""
        (self.root / "passwd").unlink(missing_ok=True)

    @locked
    def start(self, timeout: float = 60.0) -> None:
        """Start the broker (idempotent); remove a stale PID file; refuse a port in use."""
        if self.running():
            return
        binary = mosquitto_binary()
        if binary is None:
            raise ServiceError("mosquitto is not installed; install it: apt-get install mosquitto")
        pid = _read_pid(self.pidfile)
        if pid is not None and not _pid_alive(pid):
            self.pidfile.unlink(missing_ok=True)
        if port_open("127.0.0.1", self.port) or port_blocked(self.port):
            raise ServiceError(
                f"port {self.port} is already in use by {describe_port_holder(self.port)}, so the "
                f"local Mosquitto cannot start. Stop that, or choose another port: "
                f"export GRIDWATCH_MQTT_PORT={self.port + 1}"
            )
        self.write_config()
        result = subprocess.run(
            [str(binary), "-c", str(self.conf), "-d"], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise ServiceError(f"mosquitto did not start: {result.stderr.strip()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # the port answering is not enough: with `-d` mosquitto forks before it binds, and a
            # broker that failed to bind leaves a port any local client may hold meanwhile
            if port_open("127.0.0.1", self.port) and self.pid() is not None:
                return
            time.sleep(0.05)
        tail = self.log.read_text(errors="replace").splitlines()[-10:] if self.log.exists() else []
        raise ServiceError("mosquitto did not open its port:\n" + "\n".join(tail))

    def reload(self) -> None:
        """Bring the running broker's device clients in line with the database (dynamic-security
        commands; no file rewrite, no SIGHUP). Registration events do this one device at a time
        (ingest.provision); this is for bulk changes and start-up."""
        accounts = self._accounts("reload")
        if not self.running():
            return
        try:
            accounts.sync()
        except OSError as exc:  # the broker went away meanwhile
            raise ServiceError(f"the broker did not take the device changes: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - no database: nothing to sync now
            if "OperationalError" not in type(exc).__name__:
                raise
            log.warning("broker not synced: the database is unavailable (%s)", exc)

    @locked
    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker if it runs."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)

    def status_detail(self) -> str:
        return str(self.conf)


def max_packet_size(settings: Settings) -> int:
    """The broker's packet limit, far above the largest accepted payload: a payload up to it
    reaches ingest and becomes a dead letter with its reason. (Mosquitto's message_size_limit
    would acknowledge and drop an MQTT 3.1.1 device's oversized alarm, PUBACK carrying no reason
    code in 3.1.1; above max_packet_size MQTT 5 devices are told the limit in CONNACK.)"""
    return settings.max_payload_bytes * 64 + 65_536


# --------------------------------------------------------------------------- both


def services_up(
    settings: Settings | None = None, accounts: BrokerAccounts | None = None
) -> list[ServiceStatus]:
    """Start whatever local services the settings ask for (a local broker with `accounts`:
    ingest.broker_acl.DynsecAccounts); external ones are only checked."""
    settings = settings or get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    if settings.local_database:
        LocalPostgres(settings).start()
    if settings.local_mqtt:
        LocalMosquitto(settings, accounts).start()
    return services_status(settings)


def services_down(settings: Settings | None = None) -> None:
    """Stop the local services this project started."""
    settings = settings or get_settings()
    if settings.local_mqtt:
        LocalMosquitto(settings).stop()
    if settings.local_database:
        LocalPostgres(settings).stop()


def services_status(settings: Settings | None = None) -> list[ServiceStatus]:
    """Status of the database and the broker, local or external."""
    settings = settings or get_settings()
    out: list[ServiceStatus] = []
    if settings.local_database:
        out.append(LocalPostgres(settings).status())
    else:
        from sqlalchemy.engine import make_url

        url = make_url(settings.db_url())
        host, port = url.host or "127.0.0.1", url.port or 5432
        out.append(
            ServiceStatus("postgis", port_open(host, port), False, f"{host}:{port}", "external")
        )
    host, port = settings.mqtt_endpoint()
    if settings.local_mqtt:
        out.append(LocalMosquitto(settings).status())
    else:
        out.append(
            ServiceStatus("mosquitto", port_open(host, port), False, f"{host}:{port}", "external")
        )
    return out
