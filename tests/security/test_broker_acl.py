"""Broker least privilege, replayed against the real Mosquitto (dynamic security + pattern ACL):
share-group hijack, '#', other devices' topics, hub roles, gateways, the old default password."""

from __future__ import annotations

import threading
import time

import pytest

from gridwatch.settings import get_settings
from hardware.contract.topics import inbound_filters, shared, subscriptions
from ingest.broker_acl import current_device_password, gateway_account
from tests.ingest.conftest import Collector, mqtt_client, wait_for

pytestmark = pytest.mark.integration
NOT_AUTHORIZED = 0x87


def _local() -> None:
    if not get_settings().local_mqtt:
        pytest.skip("needs the project-local Mosquitto and its dynamic-security plugin")


def _sync() -> None:
    from ingest.broker_acl import local_broker

    local_broker(get_settings()).reload()


def _login(broker, user: str, password: str):
    client, rc = mqtt_client(broker, user, password)
    assert rc is not None and not rc.is_failure, f"{user} could not connect: {rc}"
    return client


def _granted(client, filters: list[str]) -> list[int]:
    codes: list = []
    done = threading.Event()

    def on_subscribe(c, u, mid, reason_codes, props):
        codes.extend(reason_codes)
        done.set()

    client.on_subscribe = on_subscribe
    client.subscribe([(f, 1) for f in filters])
    assert done.wait(10), "no SUBACK"
    return [rc.value for rc in codes]


def _close(*clients) -> None:
    for c in clients:
        c.disconnect()
        c.loop_stop()


@pytest.fixture()
def devices(make_device, mqtt_broker):
    """Devices A and B registered and provisioned on the broker (A can log in)."""
    _local()
    a, b = make_device("alarm_input"), make_device("alarm_input")
    _sync()

    def can_connect() -> bool:
        client, rc = mqtt_client(mqtt_broker, a, current_device_password(a))
        _close(client)
        return rc is not None and not rc.is_failure

    assert wait_for(can_connect, timeout=10, every=0.2), "device A was never allowed in"
    return a, b


def test_share_group_hijack_diverts_nothing(devices, mqtt_broker) -> None:
    """The attack: a device joins the ingest share group and takes a share of every alarm."""
    a, _ = devices
    settings = get_settings()
    from gridwatch.secrets import load_secrets

    group = load_secrets(settings.home)["share_group"]
    ingest = _login(mqtt_broker, *settings.hub_credentials("ingest"))
    got = Collector(ingest)
    assert _granted(ingest, [shared(group, inbound_filters()[1])]) == [1]
    attacker = _login(mqtt_broker, a, current_device_password(a))
    stolen = Collector(attacker)
    guesses = [shared(group, f) for f in inbound_filters()] + subscriptions("ingest")
    guesses += [shared("+", "gw/v1/+/alarm"), "$share/x/#"]
    assert set(_granted(attacker, guesses)) == {NOT_AUTHORIZED}
    sender = _login(mqtt_broker, a, current_device_password(a))
    for i in range(40):
        sender.publish(f"gw/v1/{a}/alarm", f'{{"n": {i}}}'.encode(), qos=1).wait_for_publish(5)
    assert wait_for(lambda: len(got.messages) >= 40, timeout=10)
    time.sleep(0.3)
    assert len(got.messages) == 40 and stolen.messages == []
    _close(ingest, attacker, sender)


def test_devices_keep_their_role_across_a_broker_restart(devices, mqtt_broker) -> None:
    """A restart loads every device from the state file gridwatch writes: each must still be a
    member of the device group (the plugin reads membership from the group's list), or its ACL
    checks fall through to the acl_file, which grants any SUBSCRIBE - '$share' included."""
    from ingest.broker_acl import local_broker

    a, _ = devices
    local_broker(get_settings()).restart()
    assert wait_for(lambda: _ok(_try(mqtt_broker, a)), timeout=20, every=0.2), (
        "device A was not let back in after the restart"
    )
    attacker = _login(mqtt_broker, a, current_device_password(a))
    guesses = [shared("+", "gw/v1/+/alarm"), "$share/x/#", "#", "gw/v1/+/alarm"]
    assert set(_granted(attacker, guesses)) == {NOT_AUTHORIZED}
    assert _granted(attacker, [f"gw/v1/{a}/cmd"]) == [1]
    _close(attacker)


def test_device_subscribes_only_to_its_own_cmd(devices, mqtt_broker) -> None:
    a, b = devices
    dev = _login(mqtt_broker, a, current_device_password(a))
    seen = Collector(dev)
    refused = ["#", "gw/v1/#", "gw/v1/+/alarm", f"gw/v1/{b}/alarm", "$SYS/#", "$CONTROL/#"]
    assert _granted(dev, refused) == [NOT_AUTHORIZED] * len(refused)
    assert _granted(dev, [f"gw/v1/{a}/cmd"]) == [1]
    api = _login(mqtt_broker, *get_settings().hub_credentials("api"))
    api.publish(f"gw/v1/{b}/cmd", b'{"for": "b"}', qos=1).wait_for_publish(5)
    api.publish(f"gw/v1/{a}/cmd", b'{"for": "a"}', qos=1).wait_for_publish(5)
    assert wait_for(lambda: seen.messages, timeout=5)
    time.sleep(0.3)
    assert seen.messages == [(f"gw/v1/{a}/cmd", b'{"for": "a"}')]
    # subscribing to every command topic is allowed, but only its own is delivered
    dev2 = _login(mqtt_broker, a, current_device_password(a))
    seen2 = Collector(dev2)
    assert _granted(dev2, ["gw/v1/+/cmd"]) == [1]
    api.publish(f"gw/v1/{b}/cmd", b"b", qos=1).wait_for_publish(5)
    api.publish(f"gw/v1/{a}/cmd", b"a", qos=1).wait_for_publish(5)
    assert wait_for(lambda: seen2.messages, timeout=5)
    time.sleep(0.3)
    assert seen2.messages == [(f"gw/v1/{a}/cmd", b"a")]
    _close(dev, dev2, api)


def test_device_cannot_publish_as_another(devices, mqtt_broker, hub_client) -> None:
    a, b = devices
    seen = Collector(hub_client)
    hub_client.subscribe("gw/v1/#", qos=1)
    time.sleep(0.2)
    dev = _login(mqtt_broker, a, current_device_password(a))
    acks: dict[int, object] = {}
    dev.on_publish = lambda c, u, mid, reason, props: acks.__setitem__(mid, reason)
    spoof = dev.publish(f"gw/v1/{b}/alarm", b'{"spoof": true}', qos=1)
    cmd = dev.publish(f"gw/v1/{b}/cmd", b'{"reboot": true}', qos=1)
    hub = dev.publish("gw/v1/hub/events", b'{"fake": true}', qos=1)
    own = dev.publish(f"gw/v1/{a}/alarm", b'{"own": true}', qos=1)
    assert wait_for(lambda: len(acks) == 4, timeout=5)
    assert [acks[m.mid].value for m in (spoof, cmd, hub)] == [NOT_AUTHORIZED] * 3
    assert acks[own.mid].value in (0, 0x10)
    assert wait_for(lambda: f"gw/v1/{a}/alarm" in seen.topics(), timeout=5)
    time.sleep(0.3)
    # other tests' devices leave retained state behind, and a running ingest worker publishes
    # real hub events: only a's and b's topics and the device's own fake event count
    with seen.lock:
        messages = list(seen.messages)
    ours = [
        t
        for t, body in messages
        if a in t or b in t or (t == "gw/v1/hub/events" and b"fake" in body)
    ]
    assert ours == [f"gw/v1/{a}/alarm"]
    _close(dev)


def test_hub_roles_do_only_their_job(devices, mqtt_broker) -> None:
    a, _ = devices
    s = get_settings()
    api = _login(mqtt_broker, *s.hub_credentials("api"))
    assert _granted(api, ["gw/v1/+/alarm", "#"]) == [NOT_AUTHORIZED] * 2
    vision = _login(mqtt_broker, *s.hub_credentials("vision"))
    assert _granted(vision, ["gw/v1/+/snapshot", "gw/v1/+/alarm"]) == [1, NOT_AUTHORIZED]
    acks: dict[int, object] = {}
    for c in (api, vision):
        c.on_publish = lambda cl, u, mid, reason, props, c=c: acks.__setitem__((id(c), mid), reason)
    forged = vision.publish(f"gw/v1/{a}/alarm", b"{}", qos=1)
    allowed = vision.publish(f"gw/v1/{a}/analytics", b"{}", qos=1)
    cmd = api.publish(f"gw/v1/{a}/cmd", b"{}", qos=1)
    api_forged = api.publish(f"gw/v1/{a}/alarm", b"{}", qos=1)
    assert wait_for(lambda: len(acks) == 4, timeout=5)
    assert acks[(id(vision), forged.mid)].value == NOT_AUTHORIZED
    assert acks[(id(api), api_forged.mid)].value == NOT_AUTHORIZED
    assert acks[(id(vision), allowed.mid)].value != NOT_AUTHORIZED
    assert acks[(id(api), cmd.mid)].value != NOT_AUTHORIZED
    ingest = _login(mqtt_broker, *s.hub_credentials("ingest"))
    assert (
        _granted(ingest, ["gw/v1/+/cmd", "$CONTROL/dynamic-security/v1/response"])
        == [NOT_AUTHORIZED] * 2
    )
    _close(api, vision, ingest)


def test_old_default_hub_password_is_refused(mqtt_broker) -> None:
    _local()
    for user, pw in (("gridwatch-hub", "gridwatch-hub-secret"), ("gridwatch-ingest", "")):
        client, rc = mqtt_client(mqtt_broker, user, pw)
        _close(client)
        assert rc is not None and rc.is_failure


def test_gateway_publishes_only_for_its_devices(devices, mqtt_broker, hub_client) -> None:
    a, b = devices
    user, password = gateway_account("sec-test-gw", [a])
    assert user == "gateway-sec-test-gw"
    seen = Collector(hub_client)
    hub_client.subscribe("gw/v1/#", qos=1)
    time.sleep(0.2)
    gw = _login(mqtt_broker, user, password)
    acks: dict[int, object] = {}
    gw.on_publish = lambda c, u, mid, reason, props: acks.__setitem__(mid, reason)
    mine = gw.publish(f"gw/v1/{a}/alarm", b'{"via": "gw"}', qos=1)
    other = gw.publish(f"gw/v1/{b}/alarm", b'{"via": "gw"}', qos=1)
    assert wait_for(lambda: len(acks) == 2, timeout=5)
    assert acks[other.mid].value == NOT_AUTHORIZED and acks[mine.mid].value != NOT_AUTHORIZED
    assert _granted(gw, ["#", f"gw/v1/{a}/cmd"]) == [NOT_AUTHORIZED, 1]
    assert wait_for(lambda: f"gw/v1/{a}/alarm" in seen.topics(), timeout=5)
    assert f"gw/v1/{b}/alarm" not in seen.topics()
    _close(gw)
    # the device list is replaced: now it fronts B only
    _, password2 = gateway_account("sec-test-gw", [b])
    gw = _login(mqtt_broker, user, password2)
    acks.clear()
    gw.on_publish = lambda c, u, mid, reason, props: acks.__setitem__(mid, reason)
    before = gw.publish(f"gw/v1/{a}/alarm", b"{}", qos=1)
    assert wait_for(lambda: len(acks) == 1, timeout=5)
    assert acks[before.mid].value == NOT_AUTHORIZED
    _close(gw)


def test_retired_device_loses_access(devices, mqtt_broker, pg) -> None:
    a, _ = devices
    pg.execute("UPDATE devices SET retired_at = now() WHERE id = %s", (a,))
    pg.commit()
    _sync()
    client, rc = mqtt_client(mqtt_broker, a, current_device_password(a))
    _close(client)
    assert rc is not None and rc.is_failure


def test_bulk_registration_reaches_the_broker_by_a_rebuild(make_device, mqtt_broker) -> None:
    """More than BULK_COMMANDS new devices at once: the state file is rebuilt and the broker
    restarted (one command per device would rewrite the whole file each time)."""
    from ingest.broker_acl import BULK_COMMANDS

    _local()
    _sync()
    ids = [make_device("alarm_input") for _ in range(BULK_COMMANDS + 20)]
    _sync()
    for d in (ids[0], ids[-1]):
        assert wait_for(lambda d=d: _ok(_try(mqtt_broker, d)), timeout=20), d
    # the hub's accounts and the test account survived the rebuild
    c = _login(mqtt_broker, mqtt_broker.user, mqtt_broker.password)
    _close(c)


def _try(broker, device_id: str):
    client, rc = mqtt_client(broker, device_id, current_device_password(device_id))
    _close(client)
    return rc


def _ok(rc) -> bool:
    return rc is not None and not rc.is_failure
