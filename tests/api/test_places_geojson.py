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


def test_place_labels_by_zoom(client, headers, engine) -> None:
    """The hub's own names for a view: counties and townships zoomed out, villages zoomed in,
    road names at street level turned along the road; never a name outside the view."""
    from sqlalchemy import text

    h = headers["t-operator"]
    box = "115.28,28.33,115.52,28.52"  # county A, its township and both villages

    def names(zoom: int, bbox: str = box) -> set[tuple[str, str]]:
        r = client.get("/api/v1/geo/labels", headers=h, params={"bbox": bbox, "zoom": zoom})
        assert r.status_code == 200, r.text
        features = r.json()["features"]
        assert all(f["geometry"]["type"] == "Point" for f in features)
        return {(f["properties"]["kind"], f["properties"]["name"]) for f in features}

    at10 = names(10)
    assert {("county", "高安市"), ("township", "筠阳街道")} <= at10
    assert not {k for k, _ in at10} & {"village", "road"}
    at13 = names(13)
    assert {("township", "筠阳街道"), ("village", "东村"), ("village", "西村")} <= at13
    assert "county" not in {k for k, _ in at13}
    assert not names(13, "114.0,26.0,114.1,26.1")  # nothing of ours down there
    assert names(5) == set()

    key = "test-labels-road"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO roads (source_key, name, class, geom) VALUES (:k, '东村大道', 'primary', "
                "ST_Multi(ST_GeomFromText('LINESTRING(115.33 28.38, 115.36 28.41)', 4326))) "
                "ON CONFLICT (source_key) DO NOTHING"
            ),
            {"k": key},
        )
    try:
        r = client.get(
            "/api/v1/geo/labels",
            headers=h,
            params={"bbox": "115.32,28.37,115.37,28.42", "zoom": 15},
        )
        roads = [f for f in r.json()["features"] if f["properties"]["kind"] == "road"]
        ours = [f for f in roads if f["properties"]["name"] == "东村大道"]
        assert len(ours) == 1
        # rising to the north-east: text turned anticlockwise (about 49° on the mercator map)
        assert -60 < ours[0]["properties"]["angle"] < -35
        lon, lat = ours[0]["geometry"]["coordinates"]
        assert 115.33 < lon < 115.36 and 28.38 < lat < 28.41
        assert ("road", "东村大道") not in names(13)  # road names from zoom 14
        too_wide = client.get(
            "/api/v1/geo/labels", headers=h, params={"bbox": "100,20,120,30", "zoom": 9}
        )
        assert too_wide.status_code == 422
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM roads WHERE source_key = :k"), {"k": key})
