"""Device kinds catalogue: GB/T 28181 type code -> what gridwatch does with the device."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from hardware.gbid import DEFAULT_EDITION, parse_device_id, type_meaning


class KindSpec(BaseModel):
    """One device kind: its type code, MQTT topics, heartbeat interval and whether it has a FOV."""

    model_config = ConfigDict(frozen=True)

    name: str
    type_code: int
    label: str
    parent: str | None = None  # gridwatch-local sub-kinds name the standard kind they refine
    publishes: tuple[str, ...] = ("heartbeat", "state")
    subscribes: tuple[str, ...] = ()
    heartbeat_s: int = 60
    position_s: int | None = None  # how often a moving device reports its position
    has_fov: bool = False
    alarm_kinds: tuple[str, ...] = ()
    flagged: bool = False  # an unknown-but-well-formed type code accepted as "other"
    note: str = ""


_CAM = ("heartbeat", "state", "alarm", "snapshot", "analytics")
_REC = ("heartbeat", "state", "alarm")
_SENSOR = ("heartbeat", "state", "alarm")
_MOVER = ("heartbeat", "state", "position", "alarm")

# GB/T 28181 keeps devices alive with a 60 s keepalive by default; battery sensors report less.
_CATALOGUE: tuple[KindSpec, ...] = (
    KindSpec(name="dvr", type_code=111, label="DVR", publishes=_REC),
    KindSpec(name="video_server", type_code=112, label="video server", publishes=_REC),
    KindSpec(name="encoder", type_code=113, label="video encoder", publishes=_REC),
    KindSpec(name="decoder", type_code=114, label="video decoder"),
    KindSpec(name="video_matrix", type_code=115, label="video switching matrix"),
    KindSpec(name="audio_matrix", type_code=116, label="audio switching matrix"),
    KindSpec(
        name="alarm_controller",
        type_code=117,
        label="alarm controller (networked alarm host)",
        publishes=_REC,
        subscribes=("cmd",),
        alarm_kinds=("zone_alarm", "tamper", "power_loss"),
    ),
    KindSpec(name="nvr", type_code=118, label="NVR", publishes=_REC),
    KindSpec(name="hvr", type_code=130, label="HVR (hybrid recorder)", publishes=_REC),
    KindSpec(
        name="checkpoint",
        type_code=121,
        label="video checkpoint (卡口)",
        publishes=_CAM,
        has_fov=True,
        alarm_kinds=("watchlist_hit",),
    ),
    KindSpec(
        name="multi_lens_camera",
        type_code=122,
        label="multi-lens camera",
        publishes=_CAM,
        has_fov=True,
    ),
    KindSpec(
        name="parking_gate_controller",
        type_code=123,
        label="parking entrance control",
        publishes=_REC,
        subscribes=("cmd",),
    ),
    KindSpec(
        name="personnel_gate_controller",
        type_code=124,
        label="personnel entrance control",
        publishes=_REC,
        subscribes=("cmd",),
    ),
    KindSpec(
        name="security_inspection",
        type_code=125,
        label="security-inspection device",
        publishes=_REC,
    ),
    KindSpec(
        name="camera",
        type_code=131,
        label="camera",
        publishes=_CAM,
        subscribes=("cmd",),
        has_fov=True,
        alarm_kinds=("video_loss", "tamper", "motion"),
    ),
    KindSpec(
        name="ip_camera",
        type_code=132,
        label="IP camera",
        publishes=_CAM,
        subscribes=("cmd",),
        has_fov=True,
        alarm_kinds=("video_loss", "tamper", "motion", "intrusion"),
    ),
    KindSpec(name="monitor", type_code=133, label="monitor (display)"),
    KindSpec(
        name="alarm_input",
        type_code=134,
        label="alarm input (sensor)",
        publishes=_SENSOR,
        alarm_kinds=("infrared_intrusion", "door_forced", "smoke", "panic"),
    ),
    KindSpec(
        name="infrared_detector",
        type_code=134,
        label="passive-infrared intrusion detector",
        parent="alarm_input",
        publishes=_SENSOR,
        heartbeat_s=300,
        alarm_kinds=("infrared_intrusion", "tamper"),
    ),
    KindSpec(
        name="door_sensor",
        type_code=134,
        label="door contact sensor",
        parent="alarm_input",
        publishes=_SENSOR,
        heartbeat_s=600,
        alarm_kinds=("door_forced", "door_held_open", "tamper"),
    ),
    KindSpec(
        name="smoke_detector",
        type_code=134,
        label="smoke detector (NB-IoT)",
        parent="alarm_input",
        publishes=_SENSOR,
        heartbeat_s=3600,
        alarm_kinds=("smoke", "low_battery"),
    ),
    KindSpec(
        name="panic_button",
        type_code=134,
        label="panic button (一键报警)",
        parent="alarm_input",
        publishes=_SENSOR,
        heartbeat_s=300,
        alarm_kinds=("panic",),
    ),
    KindSpec(
        name="alarm_output",
        type_code=135,
        label="alarm output (light, siren)",
        subscribes=("cmd",),
    ),
    KindSpec(name="voice_input", type_code=136, label="voice input (pickup)"),
    KindSpec(
        name="voice_output",
        type_code=137,
        label="voice output (broadcast speaker, 广播喊话)",
        subscribes=("cmd",),
    ),
    KindSpec(
        name="mobile",
        type_code=138,
        label="mobile transmission device",
        publishes=_MOVER,
        position_s=30,
    ),
    KindSpec(
        name="patrol_car",
        type_code=138,
        label="patrol car tracker",
        parent="mobile",
        publishes=_MOVER,
        heartbeat_s=60,
        position_s=10,
        alarm_kinds=("panic",),
    ),
    KindSpec(name="other_peripheral", type_code=139, label="other peripheral"),
    KindSpec(
        name="livestock_collar",
        type_code=139,
        label="livestock collar tracker",
        parent="other_peripheral",
        publishes=("heartbeat", "state", "position"),
        heartbeat_s=3600,
        position_s=300,
    ),
    KindSpec(
        name="relay_alarm_output",
        type_code=140,
        label="relay alarm output",
        subscribes=("cmd",),
    ),
    KindSpec(
        name="access_gate",
        type_code=141,
        label="barrier gate (vehicle)",
        publishes=_SENSOR,
        subscribes=("cmd",),
        alarm_kinds=("forced_passage",),
    ),
    KindSpec(
        name="smart_door",
        type_code=142,
        label="smart door (personnel)",
        publishes=_SENSOR,
        subscribes=("cmd",),
        alarm_kinds=("door_forced", "door_held_open"),
    ),
    KindSpec(
        name="credential_reader",
        type_code=143,
        label="credential reader (card / face)",
        publishes=_SENSOR,
        alarm_kinds=("invalid_credential",),
    ),
)

KINDS: dict[str, KindSpec] = {k.name: k for k in _CATALOGUE}
# The standard kind of each type code: the entry without a parent.
_BY_TYPE: dict[int, KindSpec] = {k.type_code: k for k in _CATALOGUE if k.parent is None}
# Codes whose kind depends on the edition: the 2016 edition's 119 is an HVR (DESIGN §5.1).
_BY_EDITION_TYPE: dict[tuple[int, int], str] = {(2016, 119): "hvr"}


def kind(name: str) -> KindSpec:
    """The catalogue entry called `name`; ValueError listing the known names otherwise."""
    spec = KINDS.get(name.strip().lower())
    if spec is None:
        raise ValueError(f"kind: {name!r} is not a device kind (allowed: {', '.join(KINDS)})")
    return spec


def kind_for_type(type_code: int, edition: int = DEFAULT_EDITION) -> KindSpec:
    """The standard kind of a type code; unknown but well-formed codes come back as flagged "other".

    A code outside 111-999 is not well formed: ValueError names the allowed range.
    """
    alias = _BY_EDITION_TYPE.get((edition, type_code))
    spec = KINDS[alias] if alias else _BY_TYPE.get(type_code)
    meaning, family, assigned = type_meaning(type_code, edition)
    if spec is not None and assigned:
        return spec
    return KindSpec(
        name="other",
        type_code=type_code,
        label=meaning,
        publishes=("heartbeat", "state", "alarm"),
        flagged=True,
        note=f"type code {type_code:03d} ({family}) has no gridwatch kind under the "
        f"{edition} edition; accepted as 'other'",
    )


def kind_for_device(device_id: str, edition: int = DEFAULT_EDITION) -> KindSpec:
    """The standard kind of a 20-digit ID, read from its type code (digits 11-13)."""
    return kind_for_type(parse_device_id(device_id, edition).type_code, edition)


def sub_kinds(name: str) -> list[KindSpec]:
    """The gridwatch-local refinements of a standard kind (e.g. alarm_input -> smoke_detector)."""
    kind(name)
    return [k for k in _CATALOGUE if k.parent == name]
