"""The pages carry no CDN: every script and stylesheet is served by gridwatch itself; the tile URL setting."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from maps.pages import PageConfig, build_page

ASSET = re.compile(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"')


@pytest.fixture(scope="module")
def client(db_url, users):
    from api.app import create_app
    from gridwatch.settings import get_settings

    with TestClient(create_app(get_settings())) as c:
        yield c


@pytest.mark.parametrize("path", ["/map", "/install", "/audit"])
def test_every_asset_is_local_and_served(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert (
        "cdn" not in html.lower()
        and "jquery" not in html.lower()
        and "bootstrap" not in html.lower()
    )
    assets = ASSET.findall(html)
    assert any("leaflet.js" in a for a in assets) and any("VectorGrid" in a for a in assets)
    for url in assets:
        assert url.startswith(("/assets/", f"{path}/page.js", f"{path}/manifest")), url
        got = client.get(url)
        assert got.status_code == 200 and len(got.content) > 100, url
    assert not re.search(r"https?://(?!www\.w3\.org)", html), re.findall(
        r"https?://[^\s\"']+", html
    )


def test_the_map_loads_hls_js_only_for_a_live_view(client):
    """hls.js is named in the page's config (fetched at the first live view), not loaded with it."""
    html = client.get("/map").text
    assert not any("hls" in a for a in ASSET.findall(html))
    script = client.get("/map/page.js").text
    urls = re.findall(r'"hlsScript": "([^"]+)"', script)
    assert len(urls) == 1 and urls[0].startswith("/assets/"), script[:500]
    assert client.get(urls[0]).status_code == 200


def test_only_allow_listed_packages_are_served(client):
    assert client.get("/assets/vendor/leaflet/package.json").status_code == 200
    assert client.get("/assets/vendor/pbf/package.json").status_code == 404
    assert client.get("/assets/vendor/leaflet/../../package.json").status_code == 404


def test_tile_url_setting_becomes_the_base_layer():
    with_tiles = build_page(
        PageConfig(view="live", title="t", tile_url="http://tiles.internal/{z}/{x}/{y}.png")
    )
    assert "http://tiles.internal/{z}/{x}/{y}.png" in with_tiles.script
    assert "L.tileLayer" in with_tiles.script and "<script>" not in with_tiles.html
    without = build_page(PageConfig(view="live", title="t"))
    assert "L.tileLayer" not in without.script
