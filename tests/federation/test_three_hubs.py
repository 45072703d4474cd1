"""The issue's proof on one machine: two county hubs and a city, each its own PostGIS cluster and
Mosquitto. Devices publish over MQTT to the counties, whose real ingest workers store what they
say; the counties publish to the city (logical replication) and bridge their live events up. A
county's ingest worker is killed -9 mid-stream and restarted: the city ends with every device,
alarm (counted by msg id) and presence change exactly once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from federation.replication import join
from hardware.gbid import compose
from tests.federation.hubs import Hub, diff, in_sync, plan, wait_for

COUNTIES = {"county_a": "360121", "county_b": "360122"}
DEVICES = 6  # per county: the first QUIET go silent after one heartbeat (heartbeat_s 1)
QUIET = 2
ALARMS = 600  # per county, one message each, QoS 1
RATE = 250  # alarms/s per county


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Hub]]:
    """The city and two counties, each with its PostGIS and Mosquitto; the counties joined
    (replication) and bridged (live events), a relay at the city."""
    from federation.bridge import set_up_bridge
    from ingest.broker_acl import local_broker

    started: dict[str, Hub] = {}
    try:
        homes = {name: tmp_path_factory.mktemp(name) for name in ("city", *COUNTIES)}
        started.update(Hub.start_all(homes))
        for hub in started.values():
            local_broker(hub.settings).start()
        city = started["city"]
        for name, scope in COUNTIES.items():
            seed(started[name], scope)
            join(plan(started[name], city, name, scope))
            set_up_bridge(started[name].settings, city.settings, name)
        yield started
    finally:
        for hub in started.values():
            hub.stop()


def device_ids(scope: str) -> list[str]:
    return [compose(scope, 134, 1000 + i).code for i in range(DEVICES)]


def seed(hub: Hub, scope: str) -> None:
    """The county's region and its registered devices (none has said anything yet)."""
    hub.sql("INSERT INTO regions (code, level, name) VALUES (%s, 3, 'county')", (scope + "000000",))
    for i, dev in enumerate(device_ids(scope)):
        hub.sql(
            "INSERT INTO devices (id, type_code, kind, region_code, heartbeat_s) "
            "VALUES (%s, '134', 'alarm_input', %s, %s)",
            (dev, scope + "000000", 1 if i < QUIET else 600),
        )


class Devices(threading.Thread):
    """A county's devices on its broker: one heartbeat each, then ALARMS alarms (QoS 1, a msg id
    and kind of their own each, so every message is one alarm) round-robin at RATE/s."""

    def __init__(self, hub: Hub, name: str, scope: str) -> None:
        from tests.conftest import observer_account

        super().__init__(daemon=True)
        self.name_, self.ids = name, device_ids(scope)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"devices-{name}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(*observer_account(hub.settings))
        self.client.connect(*hub.settings.mqtt_endpoint())
        self.client.loop_start()
        self.acked = 0

    def msg_ids(self) -> set[str]:
        return {f"{self.name_}-{i}" for i in range(ALARMS)}

    def run(self) -> None:
        for dev in self.ids:
            info = self.client.publish(f"gw/v1/{dev}/heartbeat", json.dumps({"ts": time.time()}), 1)
            info.wait_for_publish(30)
        pending = []
        for i in range(ALARMS):
            body = {
                "msg_id": f"{self.name_}-{i}",
                "ts": time.time(),
                "kind": f"k{i}",
                "severity": 2,
            }
            dev = self.ids[QUIET + i % (DEVICES - QUIET)]  # the quiet ones stay quiet
            pending.append(self.client.publish(f"gw/v1/{dev}/alarm", json.dumps(body), qos=1))
            time.sleep(1.0 / RATE)
        for info in pending:
            info.wait_for_publish(60)
            self.acked += info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def alarms_by_msg(hub: Hub, origin: str) -> tuple[int, set[str]]:
    """(alarm rows, distinct msg ids) of one origin's stream: equal when nothing is doubled."""
    got = hub.sql(
        "SELECT msg_id FROM alarms WHERE origin = %s AND msg_id LIKE %s", (origin, origin + "-%")
    )
    return len(got), {r[0] for r in got}


def test_devices_to_counties_to_city_with_a_county_worker_killed(hubs) -> None:
    from federation.relay import Relay
    from tests.ingest.conftest import WorkerProcess

    city = hubs["city"]
    relay = Relay(city.settings, client_id="relay-city")
    threading.Thread(target=relay.run, daemon=True).start()
    assert relay.ready.wait(20)
    workers = {}
    for name in COUNTIES:
        w = WorkerProcess(client_id=f"ingest-{name}", share_group="")
        w.env.update(hubs[name].env())
        w.env.pop("GRIDWATCH_DATABASE_URL", None)
        w.env.pop("GRIDWATCH_MQTT_URL", None)
        workers[name] = w.start()
        assert w.wait_connected(), w.log.read_text(errors="replace")[-3000:]
    streams = {name: Devices(hubs[name], name, scope) for name, scope in COUNTIES.items()}
    try:
        for s in streams.values():
            s.start()
        # Kill -9 county_a's worker once part of its stream is stored, and start it again.
        county_a = hubs["county_a"]
        assert wait_for(lambda: alarms_by_msg(county_a, "county_a")[0] >= ALARMS // 4, 60, 0.02)
        workers["county_a"].kill9()
        at_kill = alarms_by_msg(county_a, "county_a")[0]
        assert at_kill < ALARMS, "the stream ended before the kill; make it longer"
        time.sleep(0.5)  # messages queue in the worker's persistent session meanwhile
        again = WorkerProcess(client_id="ingest-county_a", share_group="")
        again.env = workers["county_a"].env
        workers["county_a"] = again.start()
        restarted = time.monotonic()
        assert again.wait_connected(), again.log.read_text(errors="replace")[-3000:]
        for s in streams.values():
            s.join(120)
            assert s.acked == ALARMS

        # At each county: every message stored once (the worker's own guarantee) ...
        for name, s in streams.items():
            assert wait_for(lambda n=name: alarms_by_msg(hubs[n], n)[1] == streams[n].msg_ids())
            assert alarms_by_msg(hubs[name], name) == (ALARMS, s.msg_ids())
            # ... and the silent devices went offline (a presence interval ended) at the county.
            assert wait_for(
                lambda n=name: (
                    hubs[n].sql(
                        "SELECT count(*) FROM device_presence WHERE ended_at IS NOT NULL "
                        "AND end_reason = 'missed_heartbeats'"
                    )
                    == [(QUIET,)]
                ),
                30,
            ), hubs[name].sql("SELECT id, status, last_seen FROM devices")
        # At the city: every county row (devices, presence, alarms, trails), none twice.
        for name, s in streams.items():
            assert wait_for(lambda n=name: in_sync(city, hubs[n], n), 90), diff(
                city, hubs[name], name
            )
            assert alarms_by_msg(city, name) == (ALARMS, s.msg_ids())
            assert city.sql(
                "SELECT status, count(*) FROM devices WHERE origin = %s GROUP BY status "
                "ORDER BY status",
                (name,),
            ) == [("offline", QUIET), ("online", DEVICES - QUIET)]
            assert city.sql(
                "SELECT count(*), count(*) FILTER (WHERE ended_at IS NULL) FROM device_presence "
                "WHERE origin = %s",
                (name,),
            ) == [(DEVICES, DEVICES - QUIET)]
        print(
            f"county_a killed at {at_kill}/{ALARMS} stored; the city had every row of both "
            f"counties {time.monotonic() - restarted:.1f} s after the restart"
        )

        # The live stream at the city: the counties' events arrived through the bridge with
        # their origin, none twice (the worker relays them at QoS 0: some of those it had not
        # yet sent when it was killed are not there, the rows above are).
        def live() -> list[tuple]:
            return city.sql(
                "SELECT origin, count(*), count(DISTINCT origin_event_id) FROM hub_events "
                "WHERE kind = 'alarm.new' AND origin IS NOT NULL GROUP BY 1 ORDER BY 1"
            )

        assert wait_for(lambda: [r[0] for r in live()] == list(COUNTIES), 30), live()
        got = live()
        assert all(n == distinct for _, n, distinct in got), got
    finally:
        relay.stop()
        for s in streams.values():
            s.close()
        for w in workers.values():
            w.stop()
