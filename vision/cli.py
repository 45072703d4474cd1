"""`gridwatch vision` (the worker, approve, check) and `gridwatch inspect` (inspection rounds)."""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import typer
from rich.table import Table

from gridwatch.console import console, err, fail
from hardware.contract.topics import VISION_COMMAND_TOPIC

vision_app = typer.Typer(
    help="Frame analysis: the vision worker, approving a camera's new view, checking a file.",
    invoke_without_command=True,
)
APPROVE_TOPIC = VISION_COMMAND_TOPIC


def _fail(message: str, code: int = 2) -> NoReturn:
    fail(message, code)


def register(app: typer.Typer) -> None:
    """Add `vision` and `inspect` to the gridwatch CLI."""
    app.add_typer(vision_app, name="vision")
    app.command("inspect")(inspect_cmd)


def _mqtt(
    client_id: str,
    snapshots: bool = False,
    on_snapshot: Callable[[str, bytes], None] | None = None,
):
    from gridwatch.settings import get_settings
    from vision.worker import MqttLink

    s = get_settings()
    host, port = s.mqtt_endpoint()
    user, password = s.hub_credentials("vision")
    return MqttLink(
        host,
        port,
        user,
        password,
        client_id,
        subscribe_snapshots=snapshots,
        on_snapshot=on_snapshot,
    )


@vision_app.callback()
def vision_worker(
    ctx: typer.Context,
    cameras: Path = typer.Option(None, help="JSON list of camera configs (else: the database)."),
    region: str = typer.Option(None, help="Only cameras under this division code (database)."),
    snapshots: bool = typer.Option(True, help="Analyse JPEG snapshots from gw/v1/+/snapshot."),
    duration: float = typer.Option(None, min=0.1, help="Stop after this many seconds."),
    stats_s: float = typer.Option(10.0, min=0.5, help="Report fps and lag this often."),
    save_references: bool = typer.Option(True, help="Store learned references in the database."),
    shard: str = typer.Option("0/1", help="This worker's share I/N of the cameras (by id hash)."),
    as_json: bool = typer.Option(False, "--json", help="Print the final stats as JSON."),
) -> None:
    """Run the vision worker: every camera at its own rate, results to gw/v1/{id}/analytics."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        si, sn = (int(x) for x in shard.split("/"))
        if not 0 <= si < sn:
            raise ValueError
    except ValueError:
        _fail(f"--shard {shard!r}: expected I/N with 0 <= I < N, e.g. 0/2")
    from vision.worker import VisionWorker, load_cameras

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    engine = None
    try:
        if cameras is not None:
            cams = load_cameras(str(cameras))
        else:
            from gridwatch.db import get_engine
            from vision.store import camera_configs

            engine = get_engine(role="vision")  # gridwatch/dbroles.py: cameras, references
            cams = camera_configs(engine, region)
    except ValueError as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - a person gets the reason, not a traceback
        _fail(f"cannot load cameras from the database: {exc} (or pass --cameras FILE)", 1)
    refs: dict = {}
    save = None
    if engine is not None:
        from vision.store import references, save_reference

        try:
            refs = references(engine, [c.id for c in cams])
        except Exception as exc:  # noqa: BLE001
            err.print(f"[yellow]warning:[/] no stored references ({exc}); cameras will learn")
        if save_references:
            save = lambda dev, blob: save_reference(engine, dev, blob)  # noqa: E731
    link = _mqtt(f"gridwatch-vision-{int(time.time())}", snapshots)
    worker = VisionWorker(
        cams,
        link.publish,
        references=refs,
        save_reference=save,
        stats_s=stats_s,
        shard=(si, sn),
    )
    link.on_snapshot = worker.offer_snapshot
    if not link.wait(10):
        link.close()
        _fail("cannot reach the MQTT broker (is `gridwatch services up` running?)", 1)
    link.client.subscribe(APPROVE_TOPIC, qos=1)
    prev = link.client.on_message

    def on_message(client, userdata, msg):  # type: ignore[no-untyped-def]
        if msg.topic == APPROVE_TOPIC:
            try:
                dev = json.loads(msg.payload)["approve"]
                worker.approve_change(str(dev))
            except (ValueError, KeyError, TypeError):
                logging.warning("ignored bad vision command %r", msg.payload[:80])
            return
        prev(client, userdata, msg)

    link.client.on_message = on_message
    signal.signal(signal.SIGTERM, lambda *_: worker.stop_event.set())
    err.print(
        f"vision worker {worker.name}: {len(worker.streams)} stream cameras, "
        f"snapshots {'on' if snapshots else 'off'}; Ctrl-C to stop"
    )
    try:
        worker.run(duration=duration)
    except KeyboardInterrupt:
        pass
    finally:
        st = worker.stats()
        link.close()
    if as_json:
        print(st.model_dump_json())


@vision_app.command("approve")
def approve_cmd(
    device_id: str = typer.Argument(..., help="20-digit camera id whose new view is accepted."),
    by: str = typer.Option(..., "--by", help="Who approves (kept with the reference)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Accept a camera's changed view: forget its reference so it is relearned."""
    if not (len(device_id) == 20 and device_id.isdigit()):
        _fail(f"{device_id!r} is not a 20-digit GB/T 28181 id")
    from gridwatch.db import get_engine
    from vision.store import forget_reference

    try:
        had = forget_reference(get_engine(), device_id)
    except Exception as exc:  # noqa: BLE001
        _fail(f"cannot reach the database: {exc}", 1)
    link = _mqtt(f"gridwatch-vision-approve-{int(time.time())}")
    sent = link.wait(5)
    if sent:
        link.client.publish(APPROVE_TOPIC, json.dumps({"approve": device_id, "by": by}), qos=1)
        time.sleep(0.3)
    link.close()
    out = {"device_id": device_id, "reference_dropped": had, "worker_told": sent, "by": by}
    if as_json:
        print(json.dumps(out))
    else:
        console.print(
            f"{device_id}: reference {'dropped' if had else 'was not stored'}; "
            f"running workers {'told to relearn' if sent else 'NOT reached (broker down)'}"
        )


@vision_app.command("set")
def set_cmd(
    config: Path = typer.Argument(
        ..., help="JSON CameraConfig (id, source, fps, privacy, zones...)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Store one camera's vision settings (privacy masks, zones, tripwires, rate)."""
    from pydantic import ValidationError

    from gridwatch.db import get_engine
    from vision.pipeline import CameraConfig
    from vision.store import save_camera_config

    try:
        cfg = CameraConfig.model_validate_json(config.read_text(encoding="utf-8"))
    except OSError as exc:
        _fail(f"cannot read {config}: {exc}")
    except ValidationError as exc:
        _fail(
            f"{config}: "
            + "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        )
    from vision.zones import rule_mask_problems

    refuse, warn = rule_mask_problems(cfg.zones, cfg.tripwires, cfg.privacy)
    if refuse:
        _fail(f"{config}: " + "; ".join(refuse))
    for line in warn:
        err.print(f"[bold yellow]warning:[/] {line}", highlight=False)
    try:
        save_camera_config(get_engine(), cfg)
    except Exception as exc:  # noqa: BLE001
        _fail(f"cannot store the settings (is {cfg.id} a registered device?): {exc}", 1)
    if as_json:
        print(cfg.model_dump_json())
    else:
        console.print(
            f"{cfg.id}: stored ({len(cfg.privacy)} privacy masks, {len(cfg.zones)} "
            f"zones, {len(cfg.tripwires)} tripwires); restart workers to apply"
        )


RULE_KEYS = ("zones", "tripwires", "privacy", "motion_include", "motion_exclude")


def _validation_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in errors()
        )
    return str(exc)


def _load_rules(path: Path) -> dict:
    """Zones, tripwires, dwell and masks from a JSON object (the CameraConfig fields)."""
    try:
        if path.stat().st_size > 1_000_000:
            _fail(f"{path}: larger than 1 MB; a rule file is a few kB")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        _fail(f"cannot read {path}: {exc}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        _fail(f"{path}: not JSON: {exc}")
    if not isinstance(data, dict):
        _fail(f"{path}: expected a JSON object with some of {', '.join(RULE_KEYS)}")
    extra = sorted(set(data) - set(RULE_KEYS))
    if extra:
        _fail(f"{path}: unknown keys {', '.join(extra)}; allowed: {', '.join(RULE_KEYS)}")
    return data


@vision_app.command("check")
def check_cmd(
    path: Path = typer.Argument(..., help="A video file (or stream URL) to diagnose offline."),
    fps: float = typer.Option(5.0, min=0.1, max=30, help="Frames analysed per second of video."),
    max_frames: int = typer.Option(3000, min=1, help="Stop after this many analysed frames."),
    zones: Path = typer.Option(
        None,
        "--zones",
        help="JSON object with zones (dwell_s for dwell), tripwires, privacy and motion masks.",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event."),
) -> None:
    """Run motion, zones/tripwires/dwell and quality diagnosis over a video; print the events."""
    from hardware.contract.analytics import MotionEvent
    from vision.pipeline import CameraConfig, CameraPipeline
    from vision.sources import IsolatedCapture
    from vision.zones import rule_mask_problems

    url = str(path)
    if "://" not in url and not path.exists():
        _fail(f"{path}: no such file")
    rules = _load_rules(zones) if zones is not None else {}
    try:
        cfg = CameraConfig(
            id="0" * 20, fps=fps, quality_report_s=1e9, motion_interval_s=1e9, **rules
        )
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, told plainly
        _fail(f"{zones or 'settings'}: {_validation_message(exc)}")
    refuse, warn = rule_mask_problems(cfg.zones, cfg.tripwires, cfg.privacy)
    for line in refuse + warn:
        err.print(f"[bold yellow]warning:[/] {line}", highlight=False)
    pipe = CameraPipeline(cfg)
    cap = IsolatedCapture(url, mask=cfg.privacy_mask, max_failures=2, backoff_s=0.2)
    rows: list[dict] = []
    last_t = -1e9
    n = 0
    try:
        while n < max_frames:
            f = cap.read(timeout=10)
            if f is None:
                if cap.status in ("ended", "failed"):
                    break
                continue
            t = f.pts if f.pts is not None else f.seq / 25.0
            if t - last_t < 1.0 / fps - 1e-6:
                continue
            last_t = t
            n += 1
            f.ts = t
            for e in pipe.process(f):
                d = e.model_dump(exclude={"msg_id", "thumbnail_jpeg_b64", "evidence"})
                if isinstance(e, MotionEvent) and not e.boxes:
                    d["ended"] = True
                rows.append(d)
    finally:
        cap.close()
    if cap.status == "failed" and n == 0:
        _fail(f"cannot decode {url}: {cap.last_error}", 1)
    if as_json:
        for r in rows:
            print(json.dumps(r))
    else:
        table = Table("t (s)", "event", "detail", title=f"{url}: {n} frames at {fps:g} fps")
        for r in rows:
            if r["type"] == "quality":
                detail = (
                    "intact"
                    if r["intact"]
                    else ", ".join(
                        f"{f['code']} {f['score']:.2f}>={f['threshold']:.2f}" for f in r["faults"]
                    )
                )
            elif r["type"] == "motion":
                detail = (
                    "ended"
                    if r.get("ended")
                    else f"share {r['share']:.3f}, {len(r['boxes'])} boxes"
                )
            else:
                detail = json.dumps({k: v for k, v in r.items() if k not in ("ts", "type")})
            table.add_row(f"{r['ts']:.1f}", r["type"], detail)
        console.print(table)
    if cap.last_error and (cap.failures or "died" in cap.last_error):
        # The decoder failed on the way: what came before is shown, but this is not a pass.
        _fail(f"{url}: {cap.last_error} after {n} analysed frames", 1)


def inspect_cmd(
    region: str = typer.Option(..., "--region", help="Division code (2-12 digits) to inspect."),
    processes: int = typer.Option(4, min=1, max=64, help="Diagnosing processes."),
    snapshot_wait: float = typer.Option(60.0, min=0, help="Seconds to wait for snapshots."),
    new: bool = typer.Option(False, "--new", help="Start a new round instead of resuming."),
    every: float = typer.Option(None, min=0.001, help="Repeat a round every this many hours."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Inspection round: one look at every camera of a region, intact or faulty with evidence."""
    while True:
        started = time.monotonic()
        _inspect_once(region, processes, snapshot_wait, new, as_json)
        if every is None:
            return
        new = False
        pause = every * 3600 - (time.monotonic() - started)
        if not as_json:
            err.print(f"next round in {max(0.0, pause) / 60:.1f} min (Ctrl-C to stop)")
        try:
            time.sleep(max(0.0, pause))
        except KeyboardInterrupt:
            return


def _inspect_once(
    region: str, processes: int, snapshot_wait: float, new: bool, as_json: bool
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from gridwatch.db import get_engine
    from hardware.region_code import region_prefix
    from vision import store
    from vision.inspection import SnapshotCollector, run_round, thumbnail_bytes

    try:
        region_prefix(region)
    except ValueError as exc:
        _fail(str(exc))
    try:
        engine = get_engine(role="vision")  # gridwatch/dbroles.py: cameras, rounds, results
        cams = store.cameras(engine, region)
        configs = {c.id: c for c in store.camera_configs(engine, region)}
        refs = store.load_references(engine, [c.id for c in cams])
        round_id, resumed = store.open_round(engine, region, len(cams), resume=not new)
        done = store.done_devices(engine, round_id)
    except Exception as exc:  # noqa: BLE001
        _fail(f"cannot read cameras from the database: {exc}", 1)
    pending = [c for c in cams if c.id not in done]
    privacy = {k: c.privacy_mask.model_dump_json() for k, c in configs.items() if c.privacy}
    streams = [
        (c.id, configs[c.id].source or c.stream_url)
        for c in pending
        if (configs[c.id].source or c.stream_url)
    ]
    snaps = [c.id for c in pending if not (configs[c.id].source or c.stream_url)]
    collector = SnapshotCollector(set(snaps))
    link = None
    if snaps:
        link = _mqtt(f"gridwatch-inspect-{round_id}-{int(time.time())}", True, collector.offer)
        if not link.wait(10):
            err.print(
                "[yellow]warning:[/] MQTT broker not reachable; snapshot cameras will "
                "count as signal loss"
            )
    if not as_json:
        err.print(
            f"round {round_id} for {region}: {len(cams)} cameras, "
            f"{len(done)} already done{' (resumed)' if resumed else ''}, "
            f"{len(streams)} streams and {len(snaps)} snapshot cameras to go"
        )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=as_json,
    ) as progress:
        task = progress.add_task("inspecting", total=len(cams), completed=len(done))

        def record(out) -> None:  # type: ignore[no-untyped-def]
            store.record_result(
                engine,
                round_id,
                out.device_id,
                out.intact,
                [f.model_dump() for f in out.faults],
                thumbnail_bytes(out),
                out.error,
            )
            progress.advance(task)

        try:
            run_round(
                streams,
                snaps,
                refs,
                privacy,
                record,
                processes=processes,
                snapshot_wait_s=snapshot_wait,
                collector=collector,
            )
        except KeyboardInterrupt:
            store.finish_round(engine, round_id, "interrupted")
            err.print(
                f"interrupted: round {round_id} keeps its results; run the same command "
                "again to resume"
            )
            raise typer.Exit(130) from None
        finally:
            if link is not None:
                link.close()
    store.finish_round(engine, round_id, "done")
    summary = store.round_summary(engine, round_id)
    if as_json:
        print(json.dumps(summary))
        return
    table = Table("round", "cameras", "inspected", "intact", "faulty", "intact rate", "faults")
    rate = summary["intact_rate"]
    table.add_row(
        str(round_id),
        str(summary["total"]),
        str(summary["inspected"]),
        str(summary["intact"]),
        str(summary["faulty"]),
        f"{rate:.1%}" if isinstance(rate, float) else "-",
        ", ".join(f"{k} {v}" for k, v in summary["by_fault"].items()),
    )  # type: ignore[union-attr]
    console.print(table)
