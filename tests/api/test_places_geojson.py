"""Regions, grids and key sites as GeoJSON: filters, bbox and paging through the API."""

from __future__ import annotations

from tests.api.fixtures import VILLAGE_A1, VILLAGE_A2

BOX = "115.25,28.3,115.5,28.5"  # around villages A1 and A2


def test_regions_page_by_page(client, headers) -> None:
    h = headers["t-operator"]
    first = client.get(
        "/api/v1/geo/regions", headers=h, params={"bbox": BOX, "level": 5, "limit": 1}
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["features"]) == 1 and body["next_offset"] == 1
    codes = [body["features"][0]["properties"]["code"]]
    second = client.get(
        "/api/v1/geo/regions", headers=h, params={"bbox": BOX, "level": 5, "limit": 1, "offset": 1}
    ).json()
    codes += [f["properties"]["code"] for f in second["features"]]
    assert {VILLAGE_A1, VILLAGE_A2} <= set(codes)
    assert body["features"][0]["geometry"]["type"] in ("MultiPolygon", "Polygon")


def test_grids_and_key_sites_in_a_region(client, headers) -> None:
    h = headers["t-operator"]
    grids = client.get("/api/v1/geo/grids", headers=h, params={"region": VILLAGE_A1, "level": 3})
    assert grids.status_code == 200, grids.text
    props = [f["properties"] for f in grids.json()["features"]]
    assert any(p["code"] == "T-GRID-A1" and p["households"] == 280 for p in props)
    assert all(p["level"] == 3 for p in props)
    sites = client.get("/api/v1/geo/key-sites", headers=h, params={"bbox": BOX, "kind": "square"})
    assert sites.status_code == 200, sites.text
    names = [f["properties"]["name"] for f in sites.json()["features"]]
    assert "东村广场" in names
    none = client.get("/api/v1/geo/key-sites", headers=h, params={"bbox": BOX, "kind": "dock"})
    assert "东村广场" not in [f["properties"]["name"] for f in none.json()["features"]]


def test_region_list_filters_and_simplified_outlines(client, headers) -> None:
    """Core-built filters (parent, level, name) and the simplified outline are bound values."""
    h = headers["t-operator"]
    listed = client.get("/api/v1/regions", headers=h, params={"level": 5, "q": "%_"})
    assert listed.status_code == 200, listed.text  # % and _ are not wildcards for the user
    level5 = client.get("/api/v1/regions", headers=h, params={"level": 5, "limit": 500}).json()
    codes = {r["code"] for r in level5["items"]}
    assert {VILLAGE_A1, VILLAGE_A2} <= codes and all(r["level"] == 5 for r in level5["items"])
    # the names of many places in one request (the console's queue under a burst)
    named = client.get(
        "/api/v1/regions", headers=h, params={"code": [VILLAGE_A2, VILLAGE_A1, "999999999999"]}
    )
    assert named.status_code == 200, named.text
    assert [r["code"] for r in named.json()["items"]] == sorted([VILLAGE_A1, VILLAGE_A2])
    assert all(r["name"] for r in named.json()["items"])
    many = client.get(
        "/api/v1/regions", headers=h, params={"code": [f"{i:012d}" for i in range(201)]}
    )
    assert many.status_code == 422 and "200" in many.text
    bad = client.get("/api/v1/regions", headers=h, params={"code": "36012"})
    assert bad.status_code == 422
    outlines = client.get(
        "/api/v1/geo/regions",
        headers=h,
        params={"bbox": BOX, "level": 5, "simplify_m": 50, "limit": 500},
    )
    assert outlines.status_code == 200, outlines.text
    features = outlines.json()["features"]
    assert features and all(f["geometry"] for f in features)
    cover = client.get("/api/v1/geo/coverage", headers=h, params={"bbox": BOX, "status": "online"})
    assert cover.status_code == 200, cover.text
    assert all(f["properties"]["status"] == "online" for f in cover.json()["features"])
