"""/docs (Swagger UI) and /redoc (ReDoc) from npm packages served by gridwatch: no CDN, no inline script."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from maps.assets import VENDOR_URL, static_url

SWAGGER_JS = f"{VENDOR_URL}/swagger-ui-dist/swagger-ui-bundle.js"
SWAGGER_CSS = f"{VENDOR_URL}/swagger-ui-dist/swagger-ui.css"
REDOC_JS = f"{VENDOR_URL}/redoc/bundles/redoc.standalone.js"

# ReDoc runs its search index in a web worker it makes from a blob: URL
REDOC_POLICY = (
    "default-src 'self'; script-src 'self'; script-src-attr 'none'; worker-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


# handler names that say too little on their own in a generated client
_CLEARER = {
    "me": "get_me",
    "register": "register_device",
    "retire": "retire_device",
    "mqtt_credentials": "get_mqtt_credentials",
    "adopt": "adopt_pending_device",
    "choropleth": "audit_choropleth",
    "report_html": "audit_report_html",
    "report_csv": "audit_report_csv",
    "stream": "stream_events",
    "users": "list_users",
    "audit_log": "list_audit_log",
    "health": "get_health",
    "metrics": "get_metrics",
    "tile": "get_tile",
}


def operation_id(route: APIRoute) -> str:
    """The operationId of a route: its handler's name (list_alarms, get_device, ...)."""
    return _CLEARER.get(route.name, route.name)


def _page(title: str, head: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title>"
        f"<link rel='icon' href='/favicon.ico'>{head}</head><body>{body}</body></html>"
    )


def install_docs(app: FastAPI) -> None:
    """Add /docs and /redoc, both reading the app's own OpenAPI document."""
    spec = app.openapi_url or ""

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(
            _page(
                "gridwatch API · Swagger UI",
                f"<link rel='stylesheet' href='{SWAGGER_CSS}'>",
                f"<div id='swagger-ui' data-openapi-url='{spec}'></div>"
                f"<script src='{SWAGGER_JS}'></script>"
                f"<script src='{static_url('gw-docs.js')}'></script>",
            ),
            headers={"Cache-Control": "no-cache"},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return HTMLResponse(
            _page(
                "gridwatch API · ReDoc",
                "",
                f"<redoc spec-url='{spec}' hide-download-button='false'></redoc>"
                f"<script src='{REDOC_JS}'></script>",
            ),
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": REDOC_POLICY},
        )
