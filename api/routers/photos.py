"""Installation photos: what the installer's phone saw, kept with the device (re-encoded, bounded)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import ANY_ROLE, Db, Principal, get_engine, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut
from api.placement import device_region
from api.trail import record
from geo.photos import photo_bytes, photo_count, photos_of, store_photo

router = APIRouter(tags=["devices"], responses=COMMON_RESPONSES)

ID_PATH = Path(..., pattern=r"^[0-9]{20}$", description="20-digit GB/T 28181 id")
MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # a phone photo; stored re-encoded, much smaller
MAX_PIXELS = 40_000_000  # refuse decompression bombs before decoding the pixels
STORED_EDGE = 2048  # longest side kept
PHOTOS_PER_DEVICE = 20
ACCEPTED = ("image/jpeg", "image/png")


class PhotoOut(BaseModel):
    """One installation photo (the image itself is at `url`)."""

    id: int
    device_id: str
    width: int
    height: int
    note: str | None = None
    taken_by: str
    taken_at: datetime
    url: str = Field(description="GET this for the JPEG")


def _reencode(data: bytes) -> tuple[bytes, int, int]:
    """Decode the upload (JPEG/PNG only, size-checked first), shrink it, write a clean JPEG:
    nothing of the uploaded file but its pixels is kept."""
    import cv2

    if data[:3] != b"\xff\xd8\xff" and data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ApiError(415, "a photo must be a JPEG or PNG image")
    try:
        return _decode_and_shrink(data)
    except cv2.error:  # a damaged file OpenCV refuses half-way: the sender's fault, not ours
        raise ApiError(
            422, "the photo cannot be decoded (damaged or not an image)", field="body"
        ) from None


def _decode_and_shrink(data: bytes) -> tuple[bytes, int, int]:
    import cv2
    import numpy as np

    header = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if header is None:
        raise ApiError(422, "the photo cannot be decoded (damaged or not an image)", field="body")
    if header.shape[0] * header.shape[1] * 64 > MAX_PIXELS:
        raise ApiError(413, f"the photo has more than {MAX_PIXELS:,} pixels")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ApiError(422, "the photo cannot be decoded (damaged or not an image)", field="body")
    h, w = image.shape[:2]
    scale = min(1.0, STORED_EDGE / max(h, w))
    if scale < 1.0:
        image = cv2.resize(
            image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ApiError(422, "the photo cannot be re-encoded", field="body")
    return jpeg.tobytes(), image.shape[1], image.shape[0]


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise ApiError(413, f"a photo may be at most {MAX_UPLOAD_BYTES // 1_048_576} MiB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise ApiError(413, f"a photo may be at most {MAX_UPLOAD_BYTES // 1_048_576} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _out(row) -> PhotoOut:
    return PhotoOut(**row, url=f"/api/v1/devices/{row['device_id']}/photos/{row['id']}")


@router.post(
    "/devices/{device_id}/photos",
    response_model=PhotoOut,
    status_code=201,
    summary="Add an installation photo",
    responses={
        404: {"model": ErrorOut},
        413: {"model": ErrorOut},
        415: {"model": ErrorOut},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ACCEPTED},
        }
    },
)
async def add_photo(
    request: Request,
    device_id: str = ID_PATH,
    note: str | None = Query(None, max_length=500, description="What the photo shows"),
    user: Principal = Depends(require("installer", brief=True)),  # no connection during upload
) -> PhotoOut:
    """A photo of the installation (JPEG or PNG from the phone), kept with the device; logged."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ACCEPTED:
        raise ApiError(415, "send the photo as image/jpeg or image/png")
    data = await _body(request)
    jpeg, width, height = _reencode(data)
    with get_engine(request).begin() as conn:
        user.require_region(device_region(conn, device_id), "add photos to devices")
        if photo_count(conn, device_id) >= PHOTOS_PER_DEVICE:
            raise ApiError(409, f"device {device_id} already has {PHOTOS_PER_DEVICE} photos")
        row = store_photo(conn, device_id, jpeg, width, height, note, user.username)
        record(conn, user.username, "device.photo_added", "device", device_id, {"photo": row["id"]})
    return _out(row)


@router.get(
    "/devices/{device_id}/photos",
    response_model=list[PhotoOut],
    summary="List installation photos",
    responses={404: {"model": ErrorOut}},
)
def list_photos(
    conn: Db, device_id: str = ID_PATH, user: Principal = Depends(require(*ANY_ROLE))
) -> list[PhotoOut]:
    """The device's installation photos, newest first."""
    if not user.may_touch(device_region(conn, device_id)):
        raise ApiError(
            403, f"device {device_id} is outside the regions assigned to {user.username!r}"
        )
    return [_out(r) for r in photos_of(conn, device_id)]


@router.get(
    "/devices/{device_id}/photos/{photo_id}",
    summary="One installation photo (JPEG)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": ErrorOut}},
)
def get_photo(
    conn: Db,
    device_id: str = ID_PATH,
    photo_id: int = Path(..., ge=1),
    user: Principal = Depends(require(*ANY_ROLE)),
) -> Response:
    """The photo itself; private to readers of the device's region, cacheable (it never changes)."""
    if not user.may_touch(device_region(conn, device_id)):
        raise ApiError(
            403, f"device {device_id} is outside the regions assigned to {user.username!r}"
        )
    data = photo_bytes(conn, device_id, photo_id)
    if data is None:
        raise ApiError(404, f"device {device_id} has no photo {photo_id}")
    return Response(
        bytes(data), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"}
    )
