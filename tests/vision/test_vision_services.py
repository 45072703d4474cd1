"""Vision against the real PostGIS and Mosquitto: references, inspection rounds, the MQTT worker."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import cv2
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import text
from typer.testing import CliRunner

from hardware.contract.analytics import QualityEvent, from_payload
from simulators.video import SynthConfig, SynthSequence
from tests.support import wait_for
from vision import store
from vision.worker import MqttLink, VisionWorker

COUNTY = "360124"  # a county no other test writes to (the suite shares one database)


def _dev(n: int) -> str:
    # county + 0000 + type 132 (IP camera) + network 0 + a serial unique to this run.
    return COUNTY + "0000" + "132" + "0" + f"{(uuid.uuid4().int + n) % 1_000_000:06d}"


def _video(path: Path, **kw) -> str:
    cfg = SynthConfig(n_frames=12, light_events=(), **kw)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (cfg.width, cfg.height))
    for fr in SynthSequence(cfg):
        w.write(fr.image)
    w.release()
    return str(path)


@pytest.fixture()
def county_cameras(engine, tmp_path: Path):
    ids = [_dev(i) for i in range(4)]
    urls = [
        _video(tmp_path / "ok.avi", seed=81),
        _video(tmp_path / "dark.avi", seed=82, fault="too_dark", fault_start=0),
        str(tmp_path / "missing.avi"),
        None,  # a snapshot camera that sends nothing
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO regions (code, level, name) VALUES (:c, 3, 'test county') "
                "ON CONFLICT (code) DO NOTHING"
            ),
            {"c": COUNTY + "000000"},
        )
        conn.execute(text("DELETE FROM inspection_rounds WHERE region_code = :r"), {"r": COUNTY})
        for dev, url in zip(ids, urls, strict=True):
            conn.execute(
                text(
                    "INSERT INTO devices (id, type_code, kind, region_code, stream_url) "
                    "VALUES (:i, '132', 'ip_camera', :r, :u)"
                ),
                {"i": dev, "r": COUNTY + "000000", "u": url},
            )
    yield ids
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM devices WHERE id = ANY(:i)"), {"i": ids})


def test_references_round_trip(engine, county_cameras) -> None:
    from vision.frames import Frame, prepare
    from vision.quality import QualityAnalyzer

    qa = QualityAnalyzer()
    for fr in SynthSequence(SynthConfig(n_frames=12, seed=83, light_events=())):
        qa.update(prepare(Frame(fr.image, fr.ts)))
    dev = county_cameras[0]
    store.save_reference(engine, dev, qa.ref.to_bytes())
    refs = store.references(engine, [dev])
    assert refs[dev].ready and refs[dev].hp.shape == qa.ref.hp.shape
    assert store.forget_reference(engine, dev)
    assert store.references(engine, [dev]) == {}


def test_inspection_round_resumes_and_records_evidence(engine, county_cameras) -> None:
    from gridwatch.cli import app

    ok, dark, missing, silent = county_cameras
    # A round that was interrupted after one camera (marked so we can tell it is not redone).
    rid, resumed = store.open_round(engine, COUNTY, 4)
    assert not resumed
    store.record_result(engine, rid, ok, True, [], None, "done before the interruption")
    store.finish_round(engine, rid, "interrupted")

    res = CliRunner().invoke(
        app, ["inspect", "--region", COUNTY, "--processes", "2", "--snapshot-wait", "0", "--json"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["round"] == rid and summary["status"] == "done"
    assert summary["inspected"] == 4 and summary["intact"] == 1 and summary["faulty"] == 3
    with engine.connect() as conn:
        rows = {
            r[0].strip(): r
            for r in conn.execute(
                text(
                    "SELECT device_id, intact, faults, thumbnail, error FROM inspection_results "
                    "WHERE round_id = :i"
                ),
                {"i": rid},
            )
        }
    assert rows[ok][4] == "done before the interruption"  # resumed, not redone
    assert [f["code"] for f in rows[dark][2]] == ["too_dark"] and rows[dark][3][:2] == b"\xff\xd8"
    assert [f["code"] for f in rows[missing][2]] == ["signal_loss"]
    assert "snapshot" in rows[silent][4]


def test_bad_region_is_refused_clearly() -> None:
    from gridwatch.cli import app

    res = CliRunner().invoke(app, ["inspect", "--region", "36x"])
    assert res.exit_code == 2 and "division code" in res.output


def test_worker_diagnoses_snapshots_over_the_broker(mqtt_broker) -> None:
    dev = _dev(9)
    got: list[QualityEvent] = []
    seen = threading.Event()

    def on_message(client, userdata, msg) -> None:
        e = from_payload(msg.payload)
        if isinstance(e, QualityEvent):
            got.append(e)
            if not e.intact:
                seen.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-sub-{dev}")
    sub.username_pw_set(mqtt_broker.user, mqtt_broker.password)
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *_args: subscribed.set()
    sub.connect(mqtt_broker.host, mqtt_broker.port)
    sub.subscribe(f"gw/v1/{dev}/analytics", qos=1)
    sub.loop_start()
    # on a loaded machine the SUBACK can come after the worker's first events (failed offline)
    assert subscribed.wait(10)
    worker = VisionWorker([], lambda topic, payload: link.publish(topic, payload), stats_s=1.0)
    arrived: set[bytes] = set()  # the snapshots the worker's link received

    def on_snapshot(device_id: str, jpeg: bytes) -> None:
        arrived.add(jpeg)
        worker.offer_snapshot(device_id, jpeg)

    link = MqttLink(
        mqtt_broker.host,
        mqtt_broker.port,
        mqtt_broker.user,
        mqtt_broker.password,
        f"t-vision-{dev}",
        # decided before the link connects: set afterwards, a connect that beat the
        # assignment never subscribed (CI: "snapshot 0 never reached the worker")
        subscribe_snapshots=True,
        on_snapshot=on_snapshot,
    )
    assert link.wait(10)
    runner = threading.Thread(target=worker.run, kwargs={"duration": 300.0}, daemon=True)
    runner.start()
    try:
        cfg = SynthConfig(n_frames=30, seed=84, fault="too_bright", fault_start=16, light_events=())
        for i, fr in enumerate(SynthSequence(cfg)):
            jpeg = cv2.imencode(".jpg", fr.image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
            # Paced by state, not time: each snapshot (QoS 0, as cameras send them) is sent again
            # until the worker has it (its subscription may still be on its way), and the next
            # goes once the worker took this one (a newer snapshot replaces an unprocessed one:
            # under load a timed loop left the worker one frame of thirty, and no event).
            for _ in range(40):
                link.client.publish(f"gw/v1/{dev}/snapshot", jpeg, qos=0)
                if wait_for(lambda jpeg=jpeg: jpeg in arrived, 0.5):
                    break
            assert jpeg in arrived, f"snapshot {i} never reached the worker"
            assert wait_for(lambda: dev not in worker._inbox, 30)
        assert seen.wait(30), [e.intact for e in got]
    finally:
        worker.stop_event.set()
        runner.join(10)
        link.close()
        sub.loop_stop()
        sub.disconnect()
    bad = next(e for e in got if not e.intact)
    assert [f.code for f in bad.faults] == ["too_bright"]
    assert bad.thumbnail_jpeg_b64
