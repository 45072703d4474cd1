"""Reading OpenStreetMap road files (.osm.pbf, .osm, .osm.bz2/.gz) with pyosmium.

Streets are the ways of the network osmnx calls "drive" (or "drive_service" / "all"), with the
same tag filters; railways are the ways tagged railway=rail and the like. Every way keeps its
node topology: two ways meet where they share an OSM node, which is where they share a vertex
in the stored lines (a bridge over a road shares none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# osmnx 2.1 `_overpass._get_network_filter` (its `settings.default_access` is access!~private),
# written as (key, unanchored regular expression) pairs: a way passes when it has a highway tag
# and, for each pair, the key is absent or its value does not match (Overpass's `!~`).
_EXCLUDED_HIGHWAY = (
    "abandoned|bridleway|bus_guideway|construction|corridor|cycleway|elevator|escalator|"
    "footway|no|path|pedestrian|planned|platform|proposed|raceway|razed|rest_area|services|steps|track"
)
NETWORKS: dict[str, tuple[tuple[str, str], ...]] = {
    "drive": (
        ("area", "yes"),
        ("access", "private"),
        ("highway", _EXCLUDED_HIGHWAY + "|service"),
        ("motor_vehicle", "no"),
        ("motorcar", "no"),
        ("service", "alley|driveway|emergency_access|parking|parking_aisle|private"),
    ),
    "drive_service": (
        ("area", "yes"),
        ("access", "private"),
        ("highway", _EXCLUDED_HIGHWAY),
        ("motor_vehicle", "no"),
        ("motorcar", "no"),
        ("service", "emergency_access|parking|parking_aisle|private"),
    ),
    "all": (
        ("area", "yes"),
        (
            "highway",
            "abandoned|construction|no|planned|platform|proposed|raceway|razed|rest_area|services",
        ),
    ),
}
_COMPILED = {
    name: tuple((key, re.compile(rx)) for key, rx in rules) for name, rules in NETWORKS.items()
}
RAILWAY_VALUES = {"rail", "light_rail", "subway", "narrow_gauge", "tram", "monorail"}
OSM_SUFFIXES = (".pbf", ".osm", ".osm.bz2", ".osm.gz", ".o5m", ".opl")


def is_street(tags: dict[str, str], network: str = "drive") -> bool:
    """Whether a way with these tags belongs to the street network `network` (as osmnx filters)."""
    if "highway" not in tags:
        return False
    return not any(key in tags and rx.search(tags[key]) for key, rx in _COMPILED[network])


def is_osm_file(path: str | Path, head: bytes | None = None) -> bool:
    """An OpenStreetMap file by its name or its first bytes (PBF header block, <osm> XML)."""
    name = Path(path).name.lower()
    if name.endswith(OSM_SUFFIXES):
        return True
    if head is None:
        try:
            with open(path, "rb") as fh:
                head = fh.read(512)
        except OSError:
            return False
    return b"OSMHeader" in head[:32] or (b"<osm" in head and b"<?xml" in head[:64])


@dataclass
class OsmWay:
    """A street or railway: its OSM id, tags, and the coordinates of its located nodes as runs
    (a way whose nodes are partly missing from an extract keeps the parts it can place)."""

    id: int
    tags: dict[str, str]
    runs: list[list[tuple[float, float]]]
    missing: int = 0


@dataclass
class OsmRoads:
    streets: list[OsmWay] = field(default_factory=list)
    railways: list[OsmWay] = field(default_factory=list)
    other_highways: int = 0  # highway ways outside the chosen network (footways, service, ...)
    unplaced: list[int] = field(default_factory=list)  # ways with fewer than 2 located nodes
    partial: int = 0  # ways with some nodes missing from the file


def read_osm_roads(path: str | Path, network: str = "drive") -> OsmRoads:
    """Streets of `network` and railways of an OSM file, with node locations (pyosmium)."""
    import osmium

    if network not in NETWORKS:
        raise ValueError(f"network {network!r}: use one of {', '.join(NETWORKS)}")
    out = OsmRoads()
    fp = (
        osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("highway", "railway"))
    )
    try:
        for w in fp:
            if not isinstance(w, osmium.osm.Way):  # the filter passes ways only
                continue
            tags = {t.k: t.v for t in w.tags}
            if is_street(tags, network):
                target = out.streets
            elif tags.get("railway") in RAILWAY_VALUES and tags.get("area") != "yes":
                target = out.railways
            else:
                out.other_highways += "highway" in tags
                continue
            runs: list[list[tuple[float, float]]] = [[]]
            missing = 0
            last = None
            for n in w.nodes:
                if n.ref == last:  # a repeated node (osmnx drops these too)
                    continue
                last = n.ref
                loc = n.location
                if loc.valid():
                    runs[-1].append((loc.lon, loc.lat))
                else:
                    missing += 1
                    if runs[-1]:
                        runs.append([])
            runs = [r for r in runs if len(r) >= 2]
            if not runs:
                out.unplaced.append(w.id)
                continue
            out.partial += missing > 0
            target.append(OsmWay(w.id, tags, runs, missing))
    except RuntimeError as exc:  # libosmium: not an OSM file, truncated, unknown format
        raise ValueError(f"{path}: not a readable OpenStreetMap file ({exc})") from None
    return out
