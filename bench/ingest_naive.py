"""Naive baseline ingest worker for bench/ingest_bench.py: one statement and one commit per message,
acked after its commit (what a first attempt would do). Not for production use."""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridwatch.settings import get_settings
from hardware.contract.payloads import PayloadError, parse_alarm, parse_heartbeat, parse_position
from hardware.contract.topics import TopicError, parse_topic
from ingest.dbconn import connect


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--share-group", default="naive")
    ap.add_argument("--client-id", default="naive-1")
    ap.add_argument("--stats-file", type=Path, required=True)
    args = ap.parse_args()
    settings = get_settings()
    conn = connect(autocommit=True)
    latencies: dict[str, list[float]] = {}
    counts = {"messages": 0}
    stop = threading.Event()

    def on_message(client, userdata, msg) -> None:
        try:
            device_id, suffix = parse_topic(msg.topic)
            if suffix == "heartbeat":
                hb = parse_heartbeat(msg.payload)
                ts = hb.ts
                conn.execute(
                    "UPDATE devices SET last_seen = now(), status = 'online' WHERE id = %s",
                    (device_id,),
                )
            elif suffix == "alarm":
                a = parse_alarm(msg.payload)
                ts = a.ts
                conn.execute(
                    "INSERT INTO alarm_messages (device_id, msg_id) VALUES (%s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (device_id, a.msg_id),
                )
                conn.execute(
                    "INSERT INTO alarms (device_id, msg_id, kind, severity, raised_at, "
                    "last_raised_at) VALUES (%s, %s, %s, %s, to_timestamp(%s), to_timestamp(%s)) "
                    "ON CONFLICT DO NOTHING",
                    (device_id, a.msg_id, a.kind, a.severity, a.ts, a.ts),
                )
            elif suffix == "position":
                p = parse_position(msg.payload)
                ts = p.ts
                conn.execute(
                    "INSERT INTO positions (device_id, ts, geom) VALUES (%s, to_timestamp(%s), "
                    "ST_SetSRID(ST_MakePoint(%s, %s), 4326)) ON CONFLICT DO NOTHING",
                    (device_id, p.ts, p.lon, p.lat),
                )
            else:
                ts = None
            if ts is not None:
                latencies.setdefault(suffix, []).append(time.time() - ts)
        except (TopicError, PayloadError):
            pass
        counts["messages"] += 1
        if msg.qos:
            client.ack(msg.mid, msg.qos)

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=mqtt.MQTTv5, manual_ack=True
    )
    client.username_pw_set(*settings.hub_credentials())
    client.on_message = on_message

    def on_connect(c, u, f, rc, p) -> None:
        c.subscribe(
            [
                (f"$share/{args.share_group}/gw/v1/+/{s}", 1)
                for s in ("heartbeat", "alarm", "position")
            ]
        )
        print("subscribed", flush=True)

    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    props.ReceiveMaximum = 20000
    host, port = settings.mqtt_endpoint()
    client.connect(host, port, clean_start=True, properties=props)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()
    args.stats_file.write_text(json.dumps({"counts": counts, "latencies": latencies}))


if __name__ == "__main__":
    main()
