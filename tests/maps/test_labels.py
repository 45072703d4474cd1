"""Every label the pages use exists in Chinese and English: keys, alarm kinds, faults, error codes."""

from __future__ import annotations

import re
from pathlib import Path

from api.errors import STATUS_CODES
from hardware.kinds import KINDS
from vision.faults import FAULT_CODES

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "maps" / "static"
PAIR = re.compile(r'(\w+): \["((?:[^"\\]|\\.)*)", "((?:[^"\\]|\\.)*)"\]')
CJK = re.compile(r"[\u3400-\u9fff]")


def _table(name: str) -> dict[str, tuple[str, str]]:
    src = (STATIC / "gw-common.js").read_text("utf-8")
    start = src.index(f"var {name} = {{")
    body = src[start : src.index("\n  };", start)]
    return {k: (zh, en) for k, zh, en in PAIR.findall(body)}


LABELS = _table("LABELS")
KINDS_TABLE = _table("ALARM_KINDS")
# labels that are the same in both languages or carry no Chinese on purpose
NOT_CHINESE = {"language", "export_csv", "crs_wgs84", "sev_max_1"}


def test_every_label_has_both_languages():
    assert len(LABELS) > 100 and len(KINDS_TABLE) > 15
    for key, (zh, en) in {**LABELS, **KINDS_TABLE}.items():
        assert zh.strip() and en.strip(), key
        if key not in NOT_CHINESE:
            assert CJK.search(zh), f"{key}: the Chinese label {zh!r} has no Chinese"
        if key != "language":  # the switch names the other language
            assert not CJK.search(en), f"{key}: the English label {en!r} is Chinese"


def test_every_key_the_pages_use_exists():
    used: set[str] = set()
    for html in STATIC.glob("*.html"):
        used |= set(re.findall(r'data-i18n(?:-ph)?="(\w+)"', html.read_text("utf-8")))
    for js in STATIC.glob("gw-*.js"):
        used |= set(re.findall(r'gw\.t\("(\w+)"\)', js.read_text("utf-8")))
    missing = sorted(k for k in used if k not in LABELS)
    assert not missing, f"keys used by the pages but not translated: {missing}"


def test_states_faults_severities_and_errors_are_translated():
    states = ("new", "acknowledged", "dispatched", "resolved", "false_alarm")
    want = {f"state_{s}" for s in states} | {f"sev_{n}" for n in range(1, 5)}
    want |= {f"fault_{f}" for f in FAULT_CODES}
    codes = set(STATUS_CODES.values()) | {"error", "database_unavailable", "invalid_json"}
    for py in (ROOT / "api").rglob("*.py"):
        codes |= set(re.findall(r'code="(\w+)"', py.read_text("utf-8")))
    want |= {f"err_{c}" for c in codes}
    missing = sorted(want - set(LABELS))
    assert not missing, f"not translated: {missing}"


def test_every_alarm_kind_is_translated():
    kinds = {k for spec in KINDS.values() for k in spec.alarm_kinds}
    kinds |= {"video_quality", "device_flooding", "geofence_intrusion", "geofence_exit"}
    from hardware.contract.payloads import ANALYTICS_ALARMS

    kinds |= {kind for kind, _sev in ANALYTICS_ALARMS.values()}
    missing = sorted(kinds - set(KINDS_TABLE))
    assert not missing, f"alarm kinds without zh/en names: {missing}"
