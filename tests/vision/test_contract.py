"""Every analytics payload the vision worker sends is accepted by the ingest worker's parser."""

from __future__ import annotations

from hardware.contract.analytics import (
    DwellEvent,
    FaultScore,
    MotionEvent,
    QualityEvent,
    TripwireEvent,
    ZoneEvent,
    to_payload,
)
from hardware.contract.payloads import parse_analytics

TS = 1_732_233_600.5


def test_ingest_accepts_every_vision_event() -> None:
    events = [
        QualityEvent(
            ts=TS,
            intact=False,
            thumbnail_jpeg_b64="/9j/",
            faults=[FaultScore(code="blur", score=0.5, threshold=0.3)],
        ),
        QualityEvent(ts=TS, intact=True),
        MotionEvent(ts=TS, share=0.02, boxes=[(1, 2, 3, 4)], frame_w=1920, frame_h=1080),
        ZoneEvent(ts=TS, zone="yard", track=3, box=(1, 2, 3, 4)),
        TripwireEvent(ts=TS, line="fence", direction="right_to_left", track=3, box=(1, 2, 3, 4)),
        DwellEvent(ts=TS, zone="atm", track=4, seconds=31.0, box=(1, 2, 3, 4)),
    ]
    for e in events:
        parsed = parse_analytics(to_payload(e))
        assert parsed.type == e.type and parsed.ts == TS and parsed.msg_id == e.msg_id
    q = parse_analytics(to_payload(events[0]))
    assert q.fault_codes() == ["blur"] and not q.is_intact()
