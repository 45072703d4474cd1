"""GB/T 28181 alarm codes to contract-v1 alarms: AlarmPriority -> severity, AlarmMethod and
AlarmType -> kind, and a msg_id that makes repeats of one notification idempotent."""

from __future__ import annotations

import hashlib

# AlarmPriority (报警级别): 1 一级警情 (most severe) .. 4 四级警情; the hub's severity runs the
# same way, 1 most severe. 0 ("all", only meaningful in queries) and anything else -> 3.
PRIORITY_SEVERITY = {1: 1, 2: 2, 3: 3, 4: 4}

# AlarmMethod (报警方式), GB/T 28181-2016 Annex A; 2022 (A.2.5) keeps the same seven.
METHODS = {
    1: "telephone",  # 电话报警
    2: "device",  # 设备报警
    3: "sms",  # 短信报警
    4: "gps",  # GPS 报警
    5: "video",  # 视频报警
    6: "device_fault",  # 设备故障报警
    7: "other",  # 其他报警
}

# AlarmType (报警类型, in <Info>), which depends on the method: the 2016 tables.
TYPES_2016: dict[int, dict[int, str]] = {
    2: {  # 设备报警
        1: "video_loss",  # 视频丢失报警
        2: "tamper",  # 设备防拆报警
        3: "disk_full",  # 存储设备磁盘满报警
        4: "high_temperature",  # 设备高温报警
        5: "low_temperature",  # 设备低温报警
    },
    5: {  # 视频报警 (video analytics)
        1: "manual_video",  # 人工视频报警
        2: "motion",  # 运动目标检测报警
        3: "left_object",  # 遗留物检测报警
        4: "object_removed",  # 物体移除检测报警
        5: "tripwire_crossing",  # 绊线检测报警
        6: "zone_intrusion",  # 入侵检测报警
        7: "wrong_direction",  # 逆行检测报警
        8: "loitering",  # 徘徊检测报警
        9: "flow_count",  # 流量统计报警
        10: "crowd_density",  # 密度检测报警
        11: "video_anomaly",  # 视频异常检测报警
        12: "fast_moving",  # 快速移动报警
    },
    6: {  # 设备故障报警
        1: "disk_fault",  # 存储设备磁盘故障报警
        2: "fan_fault",  # 存储设备风扇故障报警
    },
}
# GB/T 28181-2022 keeps every 2016 code with its meaning and adds, for video alarms (method 5),
# 13 图像遮挡报警 (the picture is covered). Its alarm notification, reset and query bodies list
# the same tables otherwise.
TYPES_2022: dict[int, dict[int, str]] = {m: dict(t) for m, t in TYPES_2016.items()}
TYPES_2022[5][13] = "occlusion"  # 图像遮挡报警
TYPES = {2016: TYPES_2016, 2022: TYPES_2022}
SUPPORTED_EDITIONS = (2016, 2022)


def _int(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit() or len(value.strip()) > 4:
        return None
    return int(value)


def severity_of(priority: str | None) -> int:
    return PRIORITY_SEVERITY.get(_int(priority) or 0, 3)


def kind_of(method: str | None, alarm_type: str | None, edition: int = 2016) -> str:
    """The hub's alarm kind from the device's edition's table, else gb_{method}[_type_N]
    keeping the codes. A code only the later edition defines is still read from it for a
    device taken as 2016 (many 2022 devices send no X-GB-Ver header, and 2022 only adds codes,
    never changes one)."""
    m, t = _int(method), _int(alarm_type)
    if m is not None and t is not None:
        for ed in (edition, *SUPPORTED_EDITIONS):
            name = TYPES.get(ed, {}).get(m, {}).get(t)
            if name is not None:
                return name
    base = f"gb_{METHODS.get(m, 'unknown') if m is not None else 'unknown'}"
    return f"{base}_type_{t}" if t is not None else base


def msg_id(device_id: str, sn: str, alarm_time: str | None) -> str:
    """Stable id of one notification: device, SN and AlarmTime (a repeat maps to the same)."""
    digest = hashlib.sha1(f"{device_id}|{sn}|{alarm_time or ''}".encode()).hexdigest()[:20]
    return f"gb:{sn[:10]}:{digest}"
