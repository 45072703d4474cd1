"""Real OpenStreetMap road files (.osm.pbf, .osm.bz2, .osm) through `import roads`, against osmnx.

The intersections derived in PostGIS from the stored street lines must agree, within 5%, with
osmnx on the same file: its graph of the same street network (osmnx's own "drive" filter),
simplified, counted with `count_streets_per_node` (nodes where >= 3 street ends meet).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text

from geo.features import FeatureFileError
from geo.import_roads import import_roads
from geo.import_villages import import_villages

DATA = Path(__file__).resolve().parents[1] / "data"
HELSINKI_PBF = DATA / "osm_helsinki_test.osm.pbf"
OAKLAND_BZ2 = DATA / "osm_west_oakland.osm.bz2"

_FILTER_PART = re.compile(r'\["([^"]+)"(?:(!~|~)"([^"]*)")?\]')


def osmnx_intersections(xml: Path, network: str = "drive") -> int:
    """Nodes with street_count >= 3 in osmnx's simplified graph of `network` from this file."""
    import networkx as nx
    import osmnx as ox
    from osmnx import _overpass

    rules = _FILTER_PART.findall(_overpass._get_network_filter(network))
    assert rules and rules[0] == ("highway", "", "")
    saved = list(ox.settings.useful_tags_way)
    ox.settings.useful_tags_way = list(dict.fromkeys([*saved, *(k for k, _, _ in rules)]))
    try:
        g = ox.graph_from_xml(xml, simplify=False, retain_all=True)
    finally:
        ox.settings.useful_tags_way = saved

    def passes(tags: dict) -> bool:
        for key, op, rx in rules:
            value = tags.get(key)
            if op == "" and value is None:
                return False
            if op == "!~" and value is not None and re.search(rx, str(value)):
                return False
            if op == "~" and (value is None or not re.search(rx, str(value))):
                return False
        return True

    keep = [(u, v, k) for u, v, k, d in g.edges(keys=True, data=True) if passes(d)]
    h = nx.MultiDiGraph(g.edge_subgraph(keep))
    h.graph.update(g.graph)
    # nodes a way references that the extract does not hold have no coordinates
    h.remove_nodes_from([n for n, d in h.nodes(data=True) if "x" not in d])
    h = ox.simplify_graph(h)
    counts = ox.stats.count_streets_per_node(h)
    return sum(1 for c in counts.values() if c >= 3)


def _to_xml(src: Path, dest: Path) -> Path:
    import osmium

    with osmium.SimpleWriter(str(dest)) as writer:
        for obj in osmium.FileProcessor(str(src)):
            writer.add(obj)
    return dest


def _complete(src: Path, dest: Path) -> Path:
    """The file as osmnx can read it: osmnx refuses ways that reference nodes an extract does
    not hold, so such ways are cut there into their runs of held nodes (the parts `import roads`
    keeps of them), the extra parts under new negative ids."""
    import osmium

    held: set[int] = set()
    with osmium.SimpleWriter(str(dest)) as writer:
        for obj in osmium.FileProcessor(str(src), osmium.osm.NODE | osmium.osm.WAY):
            if obj.is_node():
                held.add(obj.id)
                writer.add_node(obj)
                continue
            runs: list[list[int]] = [[]]
            for n in obj.nodes:
                if n.ref in held:
                    runs[-1].append(n.ref)
                elif runs[-1]:
                    runs.append([])
            tags = {t.k: t.v for t in obj.tags}
            for i, run in enumerate(r for r in runs if len(set(r)) >= 2):
                wid = obj.id if i == 0 else -(obj.id * 100 + i)
                writer.add_way(osmium.osm.mutable.Way(id=wid, nodes=run, tags=tags))
    return dest


def _ours(conn, path: Path) -> tuple[object, int]:
    """Import `path` as the only roads (inside the caller's transaction); derived intersections."""
    conn.execute(text("DELETE FROM roads"))
    report = import_roads(conn, path)
    n = conn.execute(text("SELECT count(*) FROM intersections WHERE source_key LIKE 'x:%'"))
    return report, n.scalar_one()


@pytest.fixture
def rollback(engine):
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            yield conn
        finally:
            tx.rollback()


def test_pbf_and_its_xml_give_osmnx_intersections(rollback, tmp_path):
    xml = _to_xml(HELSINKI_PBF, tmp_path / "helsinki.osm")
    expected = osmnx_intersections(_complete(HELSINKI_PBF, tmp_path / "for_osmnx.osm"))
    assert expected >= 50  # the file is a real city extract, not a handful of ways

    report, ours = _ours(rollback, HELSINKI_PBF)
    assert report.inserted > 100, report.summary()
    # ways of which the extract holds fewer than two nodes cannot be placed: refused, with why
    assert all("fewer than 2 of its nodes" in r.reason for r in report.rejected)
    assert any("outside the 'drive' street network" in f for f in report.findings)
    assert abs(ours - expected) <= 0.05 * expected, (ours, expected)
    main, degrees = rollback.execute(
        text(
            "SELECT count(*) FILTER (WHERE is_main), array_agg(DISTINCT degree ORDER BY degree) "
            "FROM intersections WHERE source_key LIKE 'x:%'"
        )
    ).one()
    assert min(degrees) >= 3 and 0 < main <= ours

    # the same data as OSM XML: the same ways and intersections, nothing changes
    again = import_roads(rollback, xml)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, report.inserted)
    assert again.status == "unchanged", again.summary()


def test_osmnx_own_test_file_bz2(rollback):
    expected = osmnx_intersections(OAKLAND_BZ2)
    assert expected >= 5
    report, ours = _ours(rollback, OAKLAND_BZ2)
    assert report.inserted > 0
    assert abs(ours - expected) <= 0.05 * expected, (ours, expected)


def test_bad_osm_files_are_refused_clearly(rollback, tmp_path):
    cut = tmp_path / "cut.osm.pbf"
    cut.write_bytes(HELSINKI_PBF.read_bytes()[:5000])
    with pytest.raises(ValueError, match="not a readable OpenStreetMap file"):
        import_roads(rollback, cut)
    with pytest.raises(FeatureFileError, match="always WGS 84"):
        import_roads(rollback, HELSINKI_PBF, crs="gcj02")
    # other importers name the command that reads OSM files instead of "neither UTF-8 nor GBK"
    with pytest.raises(FeatureFileError, match="gridwatch import roads"):
        import_villages(rollback, HELSINKI_PBF)
