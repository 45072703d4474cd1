"""Live view routes: start watching a camera (HLS made by FFmpeg on the hub), fetch it, stop."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from api.deps import Principal, get_engine, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut
from api.live import SEGMENT_NAME, LiveError, LiveStreams
from api.routers.cameras import readable_device
from api.routers.snapshots import READERS
from geo.device_reads import live_source

router = APIRouter(tags=["live"], responses=COMMON_RESPONSES)

DEVICE_ID = Path(..., pattern=r"^[0-9]{20}$", description="20-digit GB/T 28181 device id")
VIEWER = Path(..., pattern=r"^[A-Za-z0-9_-]{16}$", description="The viewer id POST gave")
START_WAIT_S = 8.0  # the first segment is normally there in 1-2 s
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such device, or it has no stream URL"},
    503: {"model": ErrorOut, "description": "live view off, FFmpeg missing, or the cap reached"},
    504: {"model": ErrorOut, "description": "the camera sent no picture in time"},
}


def streams(request: Request) -> LiveStreams:
    """The worker's transcodes (made on first use, stopped when the API stops)."""
    live = getattr(request.app.state, "live", None)
    if live is None:
        s = request.app.state.settings
        live = LiveStreams(s.home / "live", s.live_max_transcodes, s.live_idle_s, s.live_video)
        request.app.state.live = live
    return live


class LiveViewer(BaseModel):
    """A viewer of a camera's live picture: play `playlist` (HLS) and DELETE `url` when done."""

    device_id: str
    viewer: str
    playlist: str = Field(description="HLS playlist; fetching it keeps the transcode running")
    url: str = Field(description="DELETE this when the viewer leaves")
    idle_s: float = Field(description="The transcode stops this long after the last fetch")


def _error(exc: LiveError) -> ApiError:
    return ApiError(exc.status, str(exc), code=exc.code)


@router.post(
    "/devices/{device_id}/live",
    response_model=LiveViewer,
    status_code=201,
    summary="Start watching a camera live",
    operation_id="start_live_view",
    responses=ERRORS,
)
def start_live(
    request: Request,
    device_id: str = DEVICE_ID,
    # it waits seconds for the first segment: no request connection held meanwhile
    user: Principal = Depends(require(*READERS, brief=True)),
) -> LiveViewer:
    """Joins the camera's running transcode or starts FFmpeg on its RTSP URL, or for a GB/T 28181
    channel on the live session its gateway opens (INVITE); answers once the first HLS segment is
    ready."""
    with get_engine(request).connect() as conn:
        readable_device(conn, device_id, user)
        url, gb28181 = live_source(conn, device_id)
    if not url and not gb28181:
        raise ApiError(404, f"camera {device_id} has no stream URL", code="no_stream")
    live = streams(request)
    try:
        # a stream URL wins; a GB/T 28181 channel without one is asked through its gateway
        viewer, stream = live.open(device_id, url, gb28181=not url)
    except LiveError as exc:
        raise _error(exc) from None
    if not live.wait_ready(stream, START_WAIT_S):
        live.close(device_id, viewer)
        raise ApiError(
            504,
            f"camera {device_id} sent no picture within {START_WAIT_S:.0f} s",
            code="no_picture",
        )
    base = f"/api/v1/live/{device_id}/{viewer}"
    return LiveViewer(
        device_id=device_id,
        viewer=viewer,
        playlist=f"{base}/index.m3u8",
        url=base,
        idle_s=live.idle_s,
    )


@router.get(
    "/live/{device_id}/{viewer}/{name}",
    summary="A live view's HLS playlist or segment",
    operation_id="get_live_file",
    response_class=Response,
    responses={
        200: {"content": {"application/vnd.apple.mpegurl": {}, "video/mp2t": {}}},
        404: {"model": ErrorOut},
    },
)
def live_file(
    request: Request,
    device_id: str = DEVICE_ID,
    viewer: str = VIEWER,
    name: str = Path(..., max_length=20, description="index.m3u8 or segN.ts"),
    user: Principal = Depends(require(*READERS)),
) -> Response:
    """The playlist or a segment, for the viewer that started watching (keeps it running)."""
    if not SEGMENT_NAME.match(name):
        raise ApiError(404, f"no live file {name!r}", code="live_ended")
    stream = streams(request).touch(device_id, viewer)
    if stream is None:
        raise ApiError(404, "this live view has ended; start it again", code="live_ended")
    path = stream.directory / name
    if not path.is_file():
        raise ApiError(404, f"segment {name} is no longer kept", code="live_ended")
    playlist = name.endswith(".m3u8")
    return FileResponse(
        path,
        media_type="application/vnd.apple.mpegurl" if playlist else "video/mp2t",
        headers={"Cache-Control": "no-store" if playlist else "private, max-age=60"},
    )


@router.delete(
    "/live/{device_id}/{viewer}",
    status_code=204,
    summary="Stop watching",
    operation_id="stop_live_view",
    response_class=Response,
)
def stop_live(
    request: Request,
    device_id: str = DEVICE_ID,
    viewer: str = VIEWER,
    user: Principal = Depends(require(*READERS)),
) -> Response:
    """The viewer leaves; the last one leaving stops the camera's FFmpeg."""
    streams(request).close(device_id, viewer)
    return Response(status_code=204)
