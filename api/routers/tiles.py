"""Vector tiles for the maps: /tiles/{layer}/{z}/{x}/{y}.pbf (devices clustered by zoom; context)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Literal

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from api.deps import ANY_ROLE, Db, Principal, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut
from api.scope import scope_sql
from maps.tiles import MAX_ZOOM, Tile, TileError, context_tile, device_tile

router = APIRouter(tags=["tiles"], responses=COMMON_RESPONSES)

MVT = "application/vnd.mapbox-vector-tile"
TTL_S = {"devices": 5.0, "context": 300.0}  # device status changes often; boundaries rarely
CACHE_ITEMS = 4096


class TileCache:
    """A small LRU of recent tiles with a per-layer time to live."""

    def __init__(self, size: int = CACHE_ITEMS) -> None:
        self.size = size
        self.items: OrderedDict[tuple, tuple[float, bytes]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple, ttl: float) -> bytes | None:
        with self.lock:
            hit = self.items.get(key)
            if hit is None or time.monotonic() - hit[0] > ttl:
                return None
            self.items.move_to_end(key)
            return hit[1]

    def put(self, key: tuple, value: bytes) -> None:
        with self.lock:
            self.items[key] = (time.monotonic(), value)
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_cache = TileCache()


@router.get(
    "/tiles/{layer}/{z}/{x}/{y}.pbf",
    summary="Vector tile",
    response_class=Response,
    responses={
        404: {"model": ErrorOut, "description": "x or y outside the tiles of that zoom"},
        200: {
            "content": {MVT: {"schema": {"type": "string", "format": "binary"}}},
            "description": "a Mapbox Vector Tile (may be empty)",
        },
    },
)
def tile(
    conn: Db,
    layer: Literal["devices", "context"],
    z: int = Path(..., ge=0, le=MAX_ZOOM),
    x: int = Path(..., ge=0, le=2**MAX_ZOOM - 1),
    y: int = Path(..., ge=0, le=2**MAX_ZOOM - 1),
    user: Principal = Depends(require(*ANY_ROLE)),
) -> Response:
    """`devices`: below zoom 15 one point per cluster cell (count, online, offline, unknown), from 15
    on every fixed device (id, kind, status, heading) plus a `coverage` layer of sectors. Patrol units
    and trackers are not in tiles: they move; the map draws them from the stream. `context`: region
    outlines (deeper levels as you zoom in), grids (z>=12), key sites (z>=11), geofences."""
    try:
        address = Tile(z, x, y)
    except TileError as exc:
        raise ApiError(404, f"no such tile: {exc}") from None
    scopes = user.visible(None) if layer == "devices" else None
    key = (layer, z, x, y, tuple(scopes) if scopes is not None else None)
    body = _cache.get(key, TTL_S[layer])
    if body is None:
        body = (
            device_tile(conn, address, scope_sql("d.region_code", scopes))
            if layer == "devices"
            else context_tile(conn, address)
        )
        _cache.put(key, body)
    return Response(
        content=body,
        media_type=MVT,
        headers={"Cache-Control": f"private, max-age={int(TTL_S[layer])}"},
    )
