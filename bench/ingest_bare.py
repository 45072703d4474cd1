"""Bare subscriber for bench/ingest_bench.py: the ingest worker's MQTT side alone.

The same MQTT 5 client as the worker (ingest.mqttclient.LeanClient, manual acks, the worker's
receive maximum and subscriptions) on the same broker, fed by the same generator, but each QoS 1
message is acknowledged as it arrives without parsing or touching the database. Its sustained
rate is what broker + client + this machine allow; the batched worker's rate as a share of it is
the figure the bench reports (machines differ from run to run, this ratio less so).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gridwatch.settings import get_settings
from hardware.contract.topics import subscriptions
from ingest.config import IngestSettings
from ingest.mqttclient import LeanClient


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--share-group", default="bare")
    ap.add_argument("--client-id", default="bare-1")
    ap.add_argument("--stats-file", type=Path, required=True)
    args = ap.parse_args()
    settings = get_settings()
    cfg = IngestSettings()
    counts = {"messages": 0}
    stop = threading.Event()
    client = LeanClient(
        CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=mqtt.MQTTv5, manual_ack=True
    )
    client.username_pw_set(*settings.hub_credentials())
    client.max_queued_messages_set(0)

    def sink(topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
        counts["messages"] += 1
        if qos:
            client.ack(mid, qos)

    client.sink = sink

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        c.subscribe([(f, SubscribeOptions(qos=1)) for f in subscriptions(args.share_group)])

    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    props.ReceiveMaximum = cfg.receive_maximum
    host, port = settings.mqtt_endpoint()
    client.connect(host, port, keepalive=30, clean_start=True, properties=props)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client.loop_start()

    def write() -> None:  # the bench polls the count to see when everything arrived
        tmp = args.stats_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"counts": dict(counts), "latencies": {}}))
        tmp.replace(args.stats_file)

    while not stop.wait(0.25):
        write()
    client.disconnect()
    client.loop_stop()
    write()


if __name__ == "__main__":
    main()
