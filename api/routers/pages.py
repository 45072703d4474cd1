"""The HTML pages (/map, /install, /audit) and the static assets they load, all served locally."""

from __future__ import annotations

import html

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.deps import get_engine
from geo.regions import first_view_extent
from maps.assets import NODE_MODULES, STATIC, STATIC_URL, VENDOR_PACKAGES, VENDOR_URL, check_assets
from maps.pages import DEFAULT_BOUNDS, Page, PageConfig, build_page

router = APIRouter(include_in_schema=False)

TITLES = {
    "live": "gridwatch · 指挥中心实时地图 live map",
    "install": "gridwatch · 设备安装 installer",
    "audit": "gridwatch · 覆盖审计 coverage audit",
}


def _bounds(request: Request, region: str | None):
    """The box to show first: the region asked for, else everything loaded, else a default."""
    try:
        with get_engine(request).connect() as conn:
            box = first_view_extent(conn, region)
    except Exception:  # a page must render even when the database is down; the script says why
        return DEFAULT_BOUNDS
    if box is None:
        return DEFAULT_BOUNDS
    west, south, east, north = box
    return ((south, west), (north, east))


PATHS = {"live": "/map", "install": "/install", "audit": "/audit"}


def _build(request: Request, view: str, region: str | None) -> Page:
    settings = request.app.state.settings
    config = PageConfig(
        view=view,
        title=TITLES[view],
        bounds=_bounds(request, region),
        tile_url=settings.tile_url,
        region=region,
        extra={"installWorker": INSTALL_WORKER} if view == "install" else {},
    )
    script_url = f"{PATHS[view]}/page.js" + (f"?region={region}" if region else "")
    return build_page(config, script_url)


def _page(request: Request, view: str, region: str | None) -> HTMLResponse:
    missing = check_assets()
    if missing:
        return HTMLResponse(
            "<h1>Map assets are not installed</h1><p>Run <code>./gw setup</code> (it runs "
            "<code>npm ci</code> in maps/assets) and reload. Missing: "
            + html.escape(", ".join(missing))
            + "</p>",
            status_code=503,
        )
    return HTMLResponse(_build(request, view, region).html)


def _script(request: Request, view: str, region: str | None) -> Response:
    """The page's start-up script (folium's map set-up and gw.start), never inline (CSP)."""
    return Response(
        _build(request, view, region).script,
        media_type="text/javascript",
        headers={"Cache-Control": "no-store"},
    )


REGION = Query(None, pattern=r"^[0-9]{12}$")


@router.get("/", response_class=RedirectResponse)
def root() -> RedirectResponse:
    return RedirectResponse("/map")


FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#14233a"/>'
    '<circle cx="8" cy="8" r="3" fill="#1e9e4a"/></svg>'
)


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


@router.get("/map", response_class=HTMLResponse)
def live_map(request: Request, region: str | None = REGION) -> HTMLResponse:
    return _page(request, "live", region)


@router.get("/install", response_class=HTMLResponse)
def install(request: Request, region: str | None = REGION) -> HTMLResponse:
    return _page(request, "install", region)


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, region: str | None = REGION) -> HTMLResponse:
    return _page(request, "audit", region)


@router.get("/map/page.js")
def live_map_script(request: Request, region: str | None = REGION) -> Response:
    return _script(request, "live", region)


INSTALL_WORKER = "/install/sw.js"
MANIFEST = {
    "name": "gridwatch 设备安装 installer",
    "short_name": "gridwatch",
    "start_url": "/install",
    "scope": "/install",
    "display": "standalone",
    "background_color": "#14233a",
    "theme_color": "#14233a",
    "icons": [{"src": "/favicon.ico", "sizes": "any", "type": "image/svg+xml"}],
}


@router.get(INSTALL_WORKER)
def install_worker() -> Response:
    """The installer's service worker (offline page); allowed to control /install itself."""
    return Response(
        (STATIC / "gw-install-sw.js").read_text("utf-8"),
        media_type="text/javascript",
        headers={"Service-Worker-Allowed": "/install", "Cache-Control": "no-cache"},
    )


@router.get("/install/manifest.webmanifest")
def install_manifest() -> Response:
    """The web-app manifest: the install page can be added to a phone's home screen."""
    import json

    return Response(
        json.dumps(MANIFEST, ensure_ascii=False), media_type="application/manifest+json"
    )


def public_base(request: Request) -> str:
    """The address phones use: GRIDWATCH_PUBLIC_URL, else the one this request came in on."""
    configured = request.app.state.settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


CA_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gridwatch · 安装证书 install the certificate</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;margin:16px;max-width:40em}}
.qr svg{{width:220px;height:220px}} a.button{{display:inline-block;padding:10px 16px;background:#14233a;
color:#fff;border-radius:4px;text-decoration:none}} code{{background:#eef1f4;padding:1px 4px}}</style>
</head><body>
<h1>安装 gridwatch 证书 / Install the gridwatch certificate</h1>
<p>手机浏览器只对安全（HTTPS）页面开放定位、摄像头与指南针。在每部安装用手机上装一次本中心的证书：
Phones open location, camera and compass only to secure (HTTPS) pages. Install this hub's
certificate authority once on each installer's phone:</p>
<p><a class="button" href="/install/ca.crt" download="gridwatch-ca.crt">下载证书 Download certificate</a></p>
<ol>
<li><b>Android</b>: 设置 → 安全 → 加密与凭据 → 安装证书 → CA 证书 / Settings → Security →
Encryption &amp; credentials → Install a certificate → CA certificate; choose the downloaded file.</li>
<li><b>iPhone</b>: open the file, then Settings → General → VPN &amp; Device Management → install the
profile; then Settings → General → About → Certificate Trust Settings → turn on full trust.</li>
</ol>
<p>证书指纹 / fingerprint (SHA-256): <code>{fingerprint}</code></p>
<p>然后用手机扫描打开安装页 / Then open the installer page on the phone:</p>
<div class="qr">{qr}</div>
<p><a href="{install}">{install}</a></p>
</body></html>"""


def _local_ca(request: Request):
    from gridwatch.tls import tls_files

    files = tls_files(request.app.state.settings)
    if files is None or files.ca is None:
        return None
    return files.ca


@router.get("/install/ca", response_class=HTMLResponse)
def install_ca_page(request: Request) -> HTMLResponse:
    """How to trust the hub's local CA on a phone, with a QR code of the installer page."""
    import hashlib

    import segno
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    ca = _local_ca(request)
    install_url = public_base(request) + "/install"
    if ca is None:
        return HTMLResponse(
            "<!doctype html><meta charset='utf-8'><p>This hub does not use its own local CA "
            "(GRIDWATCH_TLS is not 'local'): phones need no certificate from it. The installer "
            f"page is <a href='{html.escape(install_url)}'>{html.escape(install_url)}</a>.</p>",
            status_code=404,
        )
    cert = x509.load_pem_x509_certificate(ca.read_bytes())
    der = cert.public_bytes(Encoding.DER)
    fingerprint = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    qr = segno.make(install_url, error="m").svg_inline(scale=5)
    return HTMLResponse(
        CA_PAGE.format(fingerprint=fingerprint, qr=qr, install=html.escape(install_url)),
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
        },
    )


@router.get("/install/ca.crt")
def install_ca_cert(request: Request) -> Response:
    """The hub's local CA certificate (public part only), for phones to install."""
    ca = _local_ca(request)
    if ca is None:
        return Response("this hub uses no local CA (GRIDWATCH_TLS is not 'local')", status_code=404)
    return Response(
        ca.read_bytes(),
        media_type="application/x-x509-ca-cert",
        headers={"Content-Disposition": 'attachment; filename="gridwatch-ca.crt"'},
    )


@router.get("/install/page.js")
def install_script(request: Request, region: str | None = REGION) -> Response:
    return _script(request, "install", region)


@router.get("/audit/page.js")
def audit_script(request: Request, region: str | None = REGION) -> Response:
    return _script(request, "audit", region)


def mount_assets(app: FastAPI) -> None:
    """Serve the allow-listed npm packages and gridwatch's own JS/CSS."""
    for package in VENDOR_PACKAGES:
        app.mount(
            f"{VENDOR_URL}/{package}",
            StaticFiles(directory=NODE_MODULES / package, check_dir=False),
            name=f"vendor-{package}",
        )
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="gw-static")
