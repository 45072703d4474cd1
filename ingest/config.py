"""Ingest worker knobs (GRIDWATCH_INGEST_* environment variables), separate from the shell's settings."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestSettings(BaseSettings):
    """Every GRIDWATCH_INGEST_* setting of the ingest worker."""

    model_config = SettingsConfigDict(env_prefix="GRIDWATCH_INGEST_", extra="ignore")

    share_group: str = Field(
        default="",
        description="Empty (default): a plain subscription in a persistent session, which the "
        "broker restores and queues for across its restarts (one worker). 'auto': share the "
        "load among several workers in the generated, unguessable group; or a group name.",
    )
    client_id: str = Field(
        default="gridwatch-ingest-1",
        description="MQTT client id; keep it stable so the persistent session survives restarts.",
    )
    session_expiry_s: int = Field(
        default=3600, ge=0, description="How long the broker keeps the session while disconnected."
    )
    discard_session_on_exit: bool = Field(
        default=False,
        description="On a clean stop, end the broker session too (benchmarks, tests), after "
        "unsubscribing and storing what is in flight; by default it is kept so a restarted "
        "worker resumes where it stopped.",
    )
    receive_maximum: int = Field(
        default=20000, ge=1, le=65535, description="QoS 1 messages in flight to this worker."
    )
    batch_max: int = Field(default=4000, ge=1, description="Flush a batch at this many messages.")
    batch_max_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Flush a batch at this many payload bytes (a batch is never bigger, but has "
        "at least one message).",
    )
    inbox_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Payload bytes received but not yet in a batch, at most; past it the worker "
        "stops reading from the broker until a batch is taken (the broker queues the rest).",
    )
    batch_ms: int = Field(default=50, ge=1, description="Flush a batch at least this often (ms).")
    missed_heartbeats: int = Field(
        default=3, ge=1, description="Heartbeat intervals a device may miss before it is offline."
    )
    missed_heartbeats_by_kind: dict[str, int] = Field(
        default_factory=dict,
        description='Per-kind override, JSON: {"smoke_detector": 2}.',
    )
    presence_flush_s: float = Field(
        default=10.0,
        ge=0,
        description="A live device's last_seen is written at most this often (never less often "
        "than its heartbeat interval; spread per device over 0.5-1x of that); online/offline "
        "changes are written at once.",
    )
    sweep_s: float = Field(default=1.0, gt=0, description="How often offline devices are swept.")
    alarm_merge_window_s: float = Field(
        default=60.0, ge=0, description="Repeats of an open alarm within this window are merged."
    )
    camera_radius_m: float = Field(
        default=300.0, gt=0, description="Nearest cameras are looked for within this radius."
    )
    camera_links: int = Field(default=5, ge=1, description="Cameras linked to each alarm at most.")
    event_retention_h: float = Field(
        default=72.0, gt=0, description="Hub events older than this are pruned."
    )
    db_retry_max_s: float = Field(
        default=5.0, gt=0, description="Longest back-off between database retries."
    )
    fair_share: bool = Field(
        default=True,
        description="Enforce the per-device limits below (rates, dead-letter quota, quarantine).",
    )
    device_msgs_per_s: float = Field(
        default=50.0, gt=0, description="Messages per second one device may send (sustained)."
    )
    device_alarms_per_s: float = Field(
        default=5.0,
        gt=0,
        description="Alarm and analytics messages per second one device may send.",
    )
    device_burst_s: float = Field(
        default=10.0,
        gt=0,
        description="A device may send this many seconds' worth of its rates at once (bucket size).",
    )
    device_deadletter_bytes_per_day: int = Field(
        default=16 * 1024 * 1024,
        ge=0,
        description="Dead-letter bytes one device may cost per day; past it the device is "
        "quarantined.",
    )
    quarantine_after: int = Field(
        default=100,
        ge=1,
        description="Messages over its rates within 10 s that quarantine a device (the ones "
        "before are dead-lettered as rate limited).",
    )
    quarantine_s: float = Field(
        default=600.0,
        gt=0,
        description="How long a quarantined device's messages are dropped (counted, not stored); "
        "operators get a device_flooding alarm when it starts.",
    )
    broker_quarantine: bool = Field(
        default=True,
        description="During a quarantine also disable the device's client at the local broker "
        "(dynamic security: it is disconnected and refused until the quarantine ends).",
    )
    deadletter_retention_h: float = Field(
        default=168.0, gt=0, description="Dead letters older than this are deleted."
    )
    deadletter_max_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=0,
        description="Dead letters' payload bytes kept at most; the oldest beyond it are deleted.",
    )
    pending_max_per_source: int = Field(
        default=1000,
        ge=0,
        description="Unknown device ids kept waiting for adoption per source (the id's 8-digit "
        "centre code); messages of further new ids are dead-lettered.",
    )
    pending_ttl_h: float = Field(
        default=168.0, gt=0, description="Pending devices not heard from for this long are deleted."
    )
    publish_events: bool = Field(
        default=True, description="Relay hub events to MQTT gw/v1/hub/events (QoS 0)."
    )


@lru_cache(maxsize=1)
def get_ingest_settings() -> IngestSettings:
    """The process-wide ingest settings, read once from the environment."""
    return IngestSettings()
