"""`gridwatch doctor`: checks the machine for what gridwatch needs and says how to fix each gap."""

from __future__ import annotations

import ctypes.util
import importlib.util
import shutil
from dataclasses import dataclass

from gridwatch.ports import ephemeral_range
from gridwatch.services import mosquitto_binary, pg_bindir, port_open, postgis_installed
from gridwatch.settings import PROJECT_ROOT, Settings


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    required: bool = True  # False: only the test suite needs it; missing it is not a failure


PYTHON_MODULES = [
    "sqlalchemy",
    "geoalchemy2",
    "psycopg",
    "alembic",
    "paho.mqtt",
    "cv2",
    "numpy",
    "fastapi",
    "uvicorn",
    "folium",
    "shapely",
    "pyproj",
]


def map_assets_dir():
    """Where the set-up installs the browser assets from the npm registry."""
    return PROJECT_ROOT / "maps" / "assets" / "node_modules"


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order a person would fix them."""
    checks: list[Check] = []
    missing = [m for m in PYTHON_MODULES if importlib.util.find_spec(m) is None]
    checks.append(
        Check(
            "python packages",
            not missing,
            "all installed" if not missing else f"missing {', '.join(missing)}: run ./gw",
        )
    )
    if settings.local_database:
        bindir = pg_bindir()
        checks.append(
            Check(
                "postgresql server",
                bindir is not None,
                str(bindir) if bindir else "apt-get install postgresql (or run ./gw as root)",
            )
        )
        checks.append(
            Check(
                "postgis",
                postgis_installed(bindir),
                "installed"
                if postgis_installed(bindir)
                else "apt-get install postgresql-15-postgis-3 (or run ./gw as root)",
            )
        )
    else:
        checks.append(Check("database", True, "external: GRIDWATCH_DATABASE_URL"))
    if settings.local_mqtt:
        mosq = mosquitto_binary()
        checks.append(
            Check(
                "mosquitto",
                mosq is not None,
                str(mosq) if mosq else "apt-get install mosquitto mosquitto-clients",
            )
        )
    else:
        host, port = settings.mqtt_endpoint()
        reachable = port_open(host, port)
        checks.append(
            Check(
                "mqtt broker", reachable, f"{host}:{port}" + ("" if reachable else " unreachable")
            )
        )
    low, high = ephemeral_range()
    ports = [("GRIDWATCH_PG_PORT", settings.pg_port)] if settings.local_database else []
    ports += [("GRIDWATCH_MQTT_PORT", settings.mqtt_port)] if settings.local_mqtt else []
    risky = [f"{name}={port}" for name, port in ports if low <= port <= high]
    checks.append(
        Check(
            "local ports",
            not risky,
            f"outside the ephemeral range {low}-{high}"
            if not risky
            else f"{', '.join(risky)} inside the ephemeral range {low}-{high}: any outgoing "
            "connection can hold it; choose a port below 32768",
            required=False,
        )
    )
    assets = map_assets_dir() / "leaflet" / "dist" / "leaflet.js"
    checks.append(
        Check(
            "map assets",
            assets.exists(),
            str(assets.parent) if assets.exists() else "run ./gw (npm ci in maps/assets)",
        )
    )
    chromium = shutil.which("chromium")
    checks.append(
        Check(
            "chromium (browser tests)",
            chromium is not None,
            chromium or "apt-get install chromium fonts-wqy-microhei (needed by ./gw test only)",
            required=False,
        )
    )
    # Playwright's bundled node (its driver) links libatomic.so.1, absent from a minimal Debian.
    atomic = ctypes.util.find_library("atomic")
    checks.append(
        Check(
            "libatomic (browser tests)",
            atomic is not None,
            atomic or "apt-get install libatomic1 (needed by ./gw test only)",
            required=False,
        )
    )
    return checks
