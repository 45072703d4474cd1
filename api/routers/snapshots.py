"""A camera's latest snapshot, privacy-masked, for signed-in readers in its region, with caching headers."""

from __future__ import annotations

import hashlib
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from sqlalchemy import Row

from api.deps import Db, Principal, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut
from geo.device_reads import device_with_camera_config
from vision.store import latest_snapshot

router = APIRouter(tags=["devices"], responses=COMMON_RESPONSES)

DEVICE_ID = Path(..., pattern=r"^[0-9]{20}$", description="20-digit GB/T 28181 device id")
READERS = ("operator", "auditor", "installer")


def masked_jpeg(jpeg: bytes, config: dict | None) -> bytes:
    """The JPEG with the camera's privacy polygons blacked out (unchanged when it has none)."""
    if not config or not config.get("privacy"):
        return jpeg
    import cv2
    import numpy as np

    from vision.privacy import PrivacyMask

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ApiError(
            422, "the stored snapshot is not a readable JPEG", code="snapshot_unreadable"
        )
    PrivacyMask.model_validate({"polygons": config["privacy"]}).apply(image)
    ok, out = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ApiError(422, "the snapshot could not be re-encoded", code="snapshot_unreadable")
    return out.tobytes()


def readable_device(conn, device_id: str, user: Principal):
    """The device's row (region, registration time, config) or 404/403."""
    row = device_with_camera_config(conn, device_id)
    if row is None:
        raise ApiError(404, f"device {device_id} is not registered", code="device_not_found")
    if not user.may_touch(row.region_code):
        raise ApiError(
            403, f"device {device_id} is outside the regions assigned to {user.username!r}"
        )
    return row


def _readable_camera(
    conn: Db,
    device_id: str = DEVICE_ID,
    user: Principal = Depends(require(*READERS)),  # the page's session cookie works for <img>
) -> Row[Any]:
    """The device in the path (its region, registration time, kind and vision config), when the
    signed-in reader's regions hold it: 404 unknown, 403 elsewhere."""
    return readable_device(conn, device_id, user)


# a route's camera: the path's device_id, checked for the signed-in reader (one dependency)
ReadableCamera = Annotated[Row[Any], Depends(_readable_camera)]


@router.get(
    "/devices/{device_id}/snapshot",
    summary="The camera's latest snapshot (privacy-masked)",
    operation_id="get_snapshot",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "JPEG; X-Snapshot-At says when"},
        304: {"description": "not modified since the ETag given"},
        404: {"model": ErrorOut},
    },
)
def get_snapshot(request: Request, conn: Db, device: ReadableCamera) -> Response:
    """The latest JPEG the camera sent, with its privacy masks applied before it leaves the hub."""
    device_id = device.id
    row = latest_snapshot(conn, device_id)
    if row is None or row.jpeg is None:
        raise ApiError(404, f"camera {device_id} has sent no snapshot yet", code="no_snapshot")
    masks = hashlib.sha256(repr((device.config or {}).get("privacy")).encode()).hexdigest()[:12]
    etag = f'"{device_id}-{int(row.at.timestamp() * 1000)}-{masks}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=5, must-revalidate",
        "Last-Modified": row.at.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "X-Snapshot-At": row.at.isoformat(),
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    body = masked_jpeg(bytes(row.jpeg), device.config)
    return Response(body, media_type="image/jpeg", headers=headers)
