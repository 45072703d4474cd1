"""The FastAPI application factory: routers, error handlers, static assets, the event broadcaster."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import dispose_read_engine
from api.docs import install_docs, operation_id
from api.errors import install_error_handlers
from api.headers import SecurityHeaders, page_policy
from api.logs import install_log_redaction
from api.metrics import Metrics, install_metrics
from gridwatch.db import get_engine
from gridwatch.secrets import generated_key
from gridwatch.settings import Settings, get_settings

API_PREFIX = "/api/v1"

DESCRIPTION = """
gridwatch's REST API and live event stream.

* Sign in with `POST /api/v1/auth/token` and send `Authorization: Bearer <token>`.
* Roles: **operator** (acts on alarms), **installer** (registers and changes devices inside the
  regions assigned to them), **auditor** (reads everything, runs audits), **admin** (everything,
  including users and the audit log).
* Coordinates in request bodies are WGS 84 unless `crs` says `gcj02` (AMap/Tencent phone maps) or
  `bd09` (Baidu); every answer is WGS 84 (EPSG:4326) GeoJSON.
* Errors: 401 not signed in, 403 with the reason, 404, 409, and 422 with `field` and `reason`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API and the map pages for `settings` (default: the process settings)."""
    settings = settings or get_settings()
    install_log_redaction()
    from api.stream import Broadcaster

    broadcaster = Broadcaster(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await broadcaster.start()
        try:
            yield
        finally:
            await broadcaster.stop()
            await dispose_read_engine(app)
            live = getattr(app.state, "live", None)
            if live is not None:  # every FFmpeg of the live view ends with the API
                live.stop_all()

    app = FastAPI(
        title="gridwatch",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served below with its own Content-Security-Policy
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.csrf_key = generated_key("csrf_key", settings)  # tokens' key signs nothing else
    app.state.engine = get_engine(settings, role="api")
    app.state.broadcaster = broadcaster
    app.state.metrics = Metrics()
    install_error_handlers(app)
    install_metrics(app)
    app.add_middleware(SecurityHeaders, policy=page_policy(settings.tile_url))
    install_docs(app)

    from api.routers import (
        admin,
        alarms,
        audits,
        auth,
        cameras,
        devices,
        kpi,
        live,
        ops,
        pages,
        pending,
        photos,
        places,
        snapshots,
        stream,
        tiles,
    )

    for module in (
        auth,
        snapshots,
        cameras,
        kpi,
        devices,
        photos,
        pending,
        places,
        alarms,
        audits,
        stream,
        live,
        admin,
        ops,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(tiles.router)
    app.include_router(pages.router)
    pages.mount_assets(app)
    return app
