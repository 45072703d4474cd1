"""SIA event codes (DC-03, and Contact ID mapped to them by pysiaalarm) to the hub's alarm kinds
and severities; restorals and supervision told apart."""

from __future__ import annotations

# code -> (kind, severity 1 most severe .. 4)
ALARMS: dict[str, tuple[str, int]] = {
    "BA": ("burglary", 1),
    "BV": ("burglary", 1),  # burglary verified
    "FA": ("fire", 1),
    "KA": ("heat", 1),
    "GA": ("gas", 1),
    "PA": ("panic", 1),
    "HA": ("holdup", 1),  # duress / hold-up
    "MA": ("medical", 1),
    "QA": ("medical", 1),  # emergency
    "TA": ("tamper", 2),
    "WA": ("water_leak", 2),
    "UA": ("zone_alarm", 2),  # untyped zone
    "ZA": ("freeze", 3),
    "AT": ("ac_loss", 3),
    "YT": ("low_battery", 3),
    "YM": ("low_battery", 3),  # battery missing
    "OP": ("opening", 4),  # disarmed
    "CL": ("closing", 4),  # armed
}
# restoral code -> the kind it restores
RESTORALS: dict[str, str] = {
    "BR": "burglary",
    "BH": "burglary",
    "FR": "fire",
    "FH": "fire",
    "KR": "heat",
    "KH": "heat",
    "GR": "gas",
    "GH": "gas",
    "PR": "panic",
    "PH": "panic",
    "HR": "holdup",
    "HH": "holdup",
    "MR": "medical",
    "MH": "medical",
    "QR": "medical",
    "QH": "medical",
    "TR": "tamper",
    "TH": "tamper",
    "WR": "water_leak",
    "WH": "water_leak",
    "UR": "zone_alarm",
    "UH": "zone_alarm",
    "ZR": "freeze",
    "ZH": "freeze",
    "AR": "ac_loss",
    "YR": "low_battery",
}
SUPERVISION = {"RP", "RS"}  # automatic test / link supervision (and NULL messages)


def classify(code: str | None) -> tuple[str, str | None, int | None]:
    """('alarm', kind, severity) | ('restoral', kind, None) | ('supervision', None, None) |
    ('other', 'sia_<code>', 4) for codes outside the tables (kept, never dropped)."""
    code = (code or "").upper()
    if code in ALARMS:
        kind, severity = ALARMS[code]
        return "alarm", kind, severity
    if code in RESTORALS:
        return "restoral", RESTORALS[code], None
    if code in SUPERVISION:
        return "supervision", None, None
    safe = "".join(c for c in code.lower() if c.isalnum())[:8] or "unknown"
    return "other", f"sia_{safe}", 4
