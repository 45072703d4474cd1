"""Browser assets served by gridwatch itself: npm packages from maps/assets/node_modules, our own JS/CSS."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "assets" / "node_modules"
STATIC = HERE / "static"
VENDOR_URL = "/assets/vendor"
STATIC_URL = "/assets/gw"

# Only these npm packages are served (nothing else under node_modules is reachable).
VENDOR_PACKAGES = (
    "leaflet",
    "leaflet.vectorgrid",
    "@zxing/library",
    "jsqr",
    "swagger-ui-dist",  # /docs
    "redoc",  # /redoc
    "hls.js",  # the live view
)

LEAFLET_JS = f"{VENDOR_URL}/leaflet/dist/leaflet.js"
LEAFLET_CSS = f"{VENDOR_URL}/leaflet/dist/leaflet.css"
VECTORGRID_JS = f"{VENDOR_URL}/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js"
# Reads QR codes and barcodes from the installer's photo of a device label (where the browser
# has no BarcodeDetector).
ZXING_JS = f"{VENDOR_URL}/@zxing/library/umd/index.min.js"
# Reads QR codes first: ZXing's reader fails on about 1 in 18 clean QR labels of 20-digit codes
# (tests/maps/test_installer_field.py), jsQR reads them all.
JSQR_JS = f"{VENDOR_URL}/jsqr/dist/jsQR.js"
# Plays a camera's live HLS (made by FFmpeg on the hub) through MediaSource.
HLS_JS = f"{VENDOR_URL}/hls.js/dist/hls.min.js"


class AssetsMissing(RuntimeError):
    """node_modules is not installed: say how to install it."""


def check_assets() -> list[str]:
    """Files the pages need that are missing (empty when all are installed)."""
    needed = [
        NODE_MODULES / "leaflet/dist/leaflet.js",
        NODE_MODULES / "leaflet/dist/leaflet.css",
        NODE_MODULES / "leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js",
        NODE_MODULES / "@zxing/library/umd/index.min.js",
        NODE_MODULES / "jsqr/dist/jsQR.js",
        NODE_MODULES / "swagger-ui-dist/swagger-ui-bundle.js",
        NODE_MODULES / "redoc/bundles/redoc.standalone.js",
        NODE_MODULES / "hls.js/dist/hls.min.js",
    ]
    return [str(p) for p in needed if not p.is_file()]


def static_url(name: str) -> str:
    """URL of one of our own files, with its modification time so browsers refetch after changes."""
    path = STATIC / name
    version = int(path.stat().st_mtime) if path.exists() else 0
    return f"{STATIC_URL}/{name}?v={version}"
