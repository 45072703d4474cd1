"""Coverage sectors: geodesic area vs analytic, apex on boundary, heading wrap, PTZ and fisheye."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import wkt as shapely_wkt
from shapely.geometry import Point

from hardware.optics import optics
from hardware.sector import (
    GEOD,
    Preset,
    SectorError,
    analytic_sector_area_m2,
    camera_sector,
    disc,
    geodesic_area_m2,
    ptz_coverage,
    sector,
    to_wkt,
)

lons = st.floats(min_value=-179.0, max_value=179.0)
lats = st.floats(min_value=-80.0, max_value=80.0)
headings = st.floats(min_value=-720.0, max_value=720.0)
halves = st.floats(min_value=1.0, max_value=179.0)
radii = st.floats(min_value=1.0, max_value=20_000.0)


@settings(max_examples=150, deadline=None)
@given(lons, lats, headings, halves, radii)
def test_area_matches_analytic_sector_within_1_percent(lon, lat, heading, half, r) -> None:
    poly = sector(lon, lat, heading, half, r)
    assert poly.is_valid
    assert geodesic_area_m2(poly) == pytest.approx(analytic_sector_area_m2(half, r), rel=0.01)


@settings(max_examples=100, deadline=None)
@given(lons, lats, headings, halves, radii)
def test_apex_is_on_the_boundary(lon, lat, heading, half, r) -> None:
    poly = sector(lon, lat, heading, half, r)
    assert poly.exterior.distance(Point(lon, lat)) < 1e-9
    assert (lon, lat) in list(poly.exterior.coords)


@settings(max_examples=100, deadline=None)
@given(lons, lats, st.floats(min_value=0, max_value=360), halves, radii, st.integers(-3, 3))
def test_headings_wrap_at_360(lon, lat, heading, half, r, turns) -> None:
    a = sector(lon, lat, heading, half, r)
    b = sector(lon, lat, heading + 360.0 * turns, half, r)
    assert a.symmetric_difference(b).area <= 1e-9 * max(a.area, 1e-12) + 1e-16


@settings(max_examples=50, deadline=None)
@given(lons, lats, headings, st.floats(min_value=1.0, max_value=60.0), radii)
def test_sector_points_the_right_way(lon, lat, heading, half, r) -> None:
    poly = sector(lon, lat, heading, half, r)
    c = poly.centroid
    az, _, _ = GEOD.inv(lon, lat, c.x, c.y)
    diff = (az - heading + 180.0) % 360.0 - 180.0
    assert abs(diff) < 1.0


def test_fisheye_disc_and_half_angle_180() -> None:
    d = disc(115.9, 28.68, 50)
    assert geodesic_area_m2(d) == pytest.approx(math.pi * 50**2, rel=0.01)
    assert sector(115.9, 28.68, 30, 180, 50).equals(d)
    assert d.contains(Point(115.9, 28.68))


def test_ptz_union_of_presets() -> None:
    presets = [Preset(heading_deg=h, half_angle_deg=30, radius_m=100) for h in (0, 60, 120)]
    cover = ptz_coverage(115.9, 28.68, presets)
    # three adjacent 60 deg sectors make one 180 deg sector
    assert geodesic_area_m2(cover) == pytest.approx(analytic_sector_area_m2(90, 100), rel=0.01)
    opposite = ptz_coverage(
        115.9, 28.68, [presets[0], Preset(heading_deg=180, half_angle_deg=10, radius_m=50)]
    )
    assert geodesic_area_m2(opposite) == pytest.approx(
        analytic_sector_area_m2(30, 100) + analytic_sector_area_m2(10, 50), rel=0.01
    )


def test_camera_sector_uses_hfov_and_dori_range_and_wkt_round_trips() -> None:
    cam = optics(4, "1/2.8", "1920x1080")
    poly = camera_sector(115.9, 28.68, 90, cam)
    r = cam.dori_range_m("observe")
    assert geodesic_area_m2(poly) == pytest.approx(
        analytic_sector_area_m2(cam.hfov_deg() / 2, r), rel=0.01
    )
    text = to_wkt(poly)
    assert text.startswith("POLYGON")
    assert shapely_wkt.loads(text).hausdorff_distance(poly) < 1e-7  # 7 decimals ~ 1 cm


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((200, 28, 0, 30, 100), "lon"),
        ((115, 95, 0, 30, 100), "lat"),
        ((115, 28, float("nan"), 30, 100), "heading"),
        ((115, 28, 0, 0, 100), "half_angle_deg"),
        ((115, 28, 0, 200, 100), "half_angle_deg"),
        ((115, 28, 0, 30, -5), "radius_m"),
        ((115, 28, 0, 30, "abc"), "radius_m"),
    ],
)
def test_bad_sector_inputs_name_the_field(args: tuple, field: str) -> None:
    with pytest.raises(SectorError, match=f"^{field}:"):
        sector(*args)


def test_sectors_draw_the_same_polygons_as_sector_one_by_one() -> None:
    import numpy as np
    import shapely

    from hardware.sector import sectors

    rng = np.random.default_rng(7)
    n = 3000
    lon = rng.uniform(-180.0, 180.0, n)
    lat = rng.uniform(-89.0, 89.0, n)
    heading = rng.uniform(-720.0, 720.0, n)
    half = rng.choice([1e-6, 0.3, 0.5, 1.0, 20.0, 40.7, 89.9, 120.0, 179.99, 180.0], n)
    radius = rng.choice([1e-3, 5.0, 50.5, 300.0, 100_000.0], n)
    many = sectors(lon, lat, heading, half, radius)
    for i in range(n):
        one = sector(lon[i], lat[i], heading[i], half[i], radius[i])
        a, b = shapely.get_coordinates(many[i]), shapely.get_coordinates(one)
        assert a.shape == b.shape and (a == b).all(), i  # bit for bit, ring order included
    assert len(sectors([], [], [], [], [])) == 0


def test_sectors_refuse_bad_input_naming_field_and_item() -> None:
    from hardware.sector import sectors

    with pytest.raises(SectorError) as info:
        sectors([116.0, 116.0], [28.0, 28.0], [0.0, 10.0], [30.0, 30.0], [50.0, -1.0])
    assert info.value.field == "radius_m" and "item 1" in str(info.value)
    with pytest.raises(SectorError) as info:
        sectors([116.0], [28.0], [float("nan")], [30.0], [50.0])
    assert info.value.field == "heading"
    with pytest.raises(SectorError):
        sectors([116.0], [28.0], [0.0], [181.0], [50.0])


@settings(max_examples=60, deadline=None)
@given(
    st.floats(min_value=73.0, max_value=135.0),
    st.floats(min_value=18.0, max_value=54.0),
    headings,
    st.floats(min_value=1.0, max_value=180.0),
    st.floats(min_value=1.0, max_value=5_000.0),
)
def test_drawn_arc_stays_within_the_stated_bound_of_the_true_arc(
    lon, lat, heading, half, r
) -> None:
    """Every point of the true geodesic arc (sampled every 0.05°) lies within ARC_ERROR_BOUND·r
    of the drawn polygon's boundary, and no drawn vertex lies outside the true sector."""
    import numpy as np
    from pyproj import Transformer

    from hardware.sector import ARC_ERROR_BOUND, ARC_STEP_DEG

    poly = sector(lon, lat, heading, half, r)
    to_m = Transformer.from_crs(
        4326, f"+proj=aeqd +lat_0={lat} +lon_0={lon} +ellps=WGS84", always_xy=True
    )
    ring = np.array(to_m.transform(*np.array(poly.exterior.coords).T)).T
    n = int(2 * half / 0.05) + 2
    az = np.linspace(heading - half, heading + half, n)
    x, y, _ = GEOD.fwd(np.full(n, lon), np.full(n, lat), az, np.full(n, r))
    true_arc = np.array(to_m.transform(x, y)).T
    from shapely import LineString, points

    gap = LineString(ring).distance(points(true_arc)).max()
    assert gap <= ARC_ERROR_BOUND * r, (gap, r, ARC_STEP_DEG)
    # chords cut inside the arc: no vertex beyond the radius (1 mm of projection slack)
    assert (np.hypot(ring[:, 0], ring[:, 1]) <= r + 1e-3).all()


def test_sectors_ewkb_writes_the_bytes_shapely_writes_of_sectors() -> None:
    import numpy as np
    import shapely

    from hardware.sector import points_ewkb, sectors, sectors_ewkb

    rng = np.random.default_rng(11)
    n = 3000
    lon = rng.uniform(-180.0, 180.0, n)
    lat = rng.uniform(-89.0, 89.0, n)
    heading = rng.uniform(-720.0, 720.0, n)
    half = rng.choice([1e-6, 1e-4, 0.3, 1.0, 20.0, 89.9, 120.0, 179.99, 180.0], n)
    radius = rng.choice([1e-3, 5.0, 50.5, 300.0, 100_000.0], n)

    def shapely_ewkb(geoms: object) -> list[bytes]:
        return list(shapely.to_wkb(shapely.set_srid(geoms, 4326), include_srid=True, byte_order=1))

    assert sectors_ewkb(lon, lat, heading, half, radius) == shapely_ewkb(
        sectors(lon, lat, heading, half, radius)
    )
    assert points_ewkb(lon, lat) == shapely_ewkb(shapely.points(lon, lat))
    assert sectors_ewkb([], [], [], [], []) == [] and points_ewkb([], []) == []
    with pytest.raises(SectorError):
        sectors_ewkb([116.0], [28.0], [0.0], [181.0], [50.0])
