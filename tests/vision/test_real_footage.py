"""Real footage (tests/data/video, hand-counted labels): zones, tripwires, dwell and clean VQD."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.vision_quality import (
    VIEW,
    first_found,
    load_clip,
    rule_events,
    run_real,
    score_rules,
    trial_seed,
)
from vision.frames import Frame
from vision.pipeline import CameraConfig, CameraPipeline

DATA = Path(__file__).resolve().parent.parent / "data" / "video"
LABELS = json.loads((DATA / "labels.json").read_text(encoding="utf-8"))
TOLERANCE_S = 1.5  # hand labels come from a 2.5 fps contact sheet; ground points lag a bit
# Analysis rates the rules must hold at alike: every tracker, zone and motion setting is in
# seconds, not frames (at 10 fps, with frame counts, a standing man faded into the background
# twice as fast and broke into pieces that dwelt: 2 of 3 plaza dwells, 3 false dwells).
RATES = pytest.mark.parametrize("fps", [5.0, 10.0])


def _events(name: str, fps: float = 5.0, quality_every: int = 1 << 30) -> list:
    clip = load_clip(str(DATA / name), fps)
    pipe = CameraPipeline(
        CameraConfig(id="0" * 20, fps=fps, quality_every=quality_every, **LABELS[name]["rules"])
    )
    out = []
    for img, t in zip(clip.frames, clip.ts, strict=True):
        out += [
            e for e in pipe.process(Frame(img, t, t)) if e.type in ("zone", "tripwire", "dwell")
        ]
    return out


def _match(truth: list[float], found: list[float]) -> tuple[int, int]:
    """(true events found within the tolerance, events that match no true one)."""
    left = sorted(found)
    hits = 0
    for t in sorted(truth):
        m = next((f for f in left if abs(f - t) <= TOLERANCE_S), None)
        if m is not None:
            hits += 1
            left.remove(m)
    return hits, len(left)


def _missed(truth: list[float], found: list[float]) -> list[float]:
    """The true events left unmatched, each taking the nearest unused found one in time."""
    left, out = sorted(found), []
    for t in sorted(truth):
        near = [f for f in left if abs(f - t) <= TOLERANCE_S]
        if near:
            left.remove(min(near, key=lambda f: abs(f - t)))
        else:
            out.append(t)
    return out


@RATES
def test_cars_crossing_and_entering_on_a_real_road(fps: float) -> None:
    ev = _events("road_topdown.mp4", fps)
    lab = LABELS["road_topdown.mp4"]
    crossings = [e.ts for e in ev if e.type == "tripwire"]
    hits, false = _match([c["t"] for c in lab["crossings"]], crossings)
    assert (hits, false) == (len(lab["crossings"]), 0), crossings
    entries = [e.ts for e in ev if e.type == "zone"]
    hits, false = _match([c["t"] for c in lab["entries"]], entries)
    assert (hits, false) == (len(lab["entries"]), 0), entries


@functools.cache
def _rule_events(name: str, fps: float) -> list:
    """A clip's events under all its rules, in one run (decoded once)."""
    return rule_events(str(DATA / name), LABELS[name]["rules"], fps)


def _scores(name: str, fps: float, lines: tuple[str, ...] = ()) -> dict[str, tuple[int, int, int]]:
    """kind -> (true, found, false) on a clip; with `lines`, crossings of those lines only."""
    lab, events = LABELS[name], _rule_events(name, fps)
    if lines:
        lab = dict(lab, crossings=[c for c in lab["crossings"] if c["line"] in lines])
        events = [e for e in events if e.type != "tripwire" or e.line in lines]
    return score_rules(lab, events)


def _plaza(fps: float) -> dict[str, tuple[int, int, int]]:
    return _scores("plaza_pets.mp4", fps)


@RATES
def test_pedestrians_crossing_a_line_in_a_plaza_crowd(fps: float) -> None:
    # 14 hand-counted crossings of the east line (x = 0.7) by 3-6 people walking, meeting and
    # standing, and 4 of the west line (x = 0.3), walkers alone. Two of them are
    # the second of a pair walking side by side, one blob in the motion mask: found since
    # such blobs are cut (at the gap between the bodies, or by their width for their height
    # against the camera's typical single shape); before, 12 of 14. Split tracks of one person
    # (a crowd's flicker) made 3 false crossings before one object gave one crossing.
    score = _scores("plaza_pets.mp4", fps, ("east", "west"))
    n, hits, false = score["crossings"]
    # The target: recall >= 0.95, <= 1 false per 100 true.
    assert n == 18 and hits >= math.ceil(0.95 * n) and false <= n // 100, score


@RATES
def test_pedestrians_crossing_a_third_line_in_the_plaza_counted_after_tuning(fps: float) -> None:
    # 17 crossings of a line at x = 0.85 (and 1 doubtful), counted after the tracker was tuned:
    # couples walking side by side down and up the road, a man turning back 1.3 s after he
    # crossed. Measured, line by line: 17 found and 0 false at 5 fps, 17 and 1 false at 10 fps
    # (14 + 1 false and 15 + 3 false before a turn-back a body width deep was told from
    # jitter and a ground point touching the line stopped counting at each touch; 15 and 16
    # before a track coming out of another object's box started on that box's side, see
    # the next test). A floor per rate, so that the tracker gets no worse.
    score = _scores("plaza_pets.mp4", fps, ("right",))
    n, hits, false = score["crossings"]
    least, most_false = {5.0: (17, 0), 10.0: (17, 1)}[fps]
    assert n == 17 and hits >= least and false <= most_false, score


@functools.cache
def _right_line_crossings(fps: float, inherit_side: bool) -> list[float]:
    rules = LABELS["plaza_pets.mp4"]["rules"]
    rules = dict(rules, zones=[], tripwires=[w for w in rules["tripwires"] if w["id"] == "right"])
    events = rule_events(
        str(DATA / "plaza_pets.mp4"), rules, fps, tracker={"inherit_side": inherit_side}
    )
    return [e.ts for e in events if e.type == "tripwire"]


@pytest.mark.parametrize(
    ("fps", "t", "what"),
    [
        (5.0, 3.3, "the second of a pair walking side by side, cut from their blob past the line"),
        (5.0, 16.8, "a man coming out of a couple's blob on the road, first seen on the line"),
        (10.0, 16.8, "the same man at 10 fps"),
    ],
)
def test_a_walker_coming_out_of_another_objects_box_keeps_his_crossing(
    fps: float, t: float, what: str
) -> None:
    # A person hidden in another's motion box (walking side by side, or behind) gets a track
    # only when the boxes part, often past or on the line: he was in that box a frame ago, so
    # his track starts on its side of the line. Without that these crossings are lost.
    truth = [
        c["t"]
        for c in LABELS["plaza_pets.mp4"]["crossings"]
        if c["line"] == "right" and not c.get("doubtful")
    ]
    assert t in truth
    now = _right_line_crossings(fps, True)
    assert t not in _missed(truth, now), (what, now)
    assert t in _missed(truth, _right_line_crossings(fps, False)), what


@RATES
def test_pedestrians_crossing_lines_on_plaza_footage_not_used_for_tuning(fps: float) -> None:
    # The 49.5 s of the same camera after plaza_pets.mp4, counted by hand after the tracker was
    # tuned: 35 crossings of the same two lines (21 east, 14 west) and 4 doubtful. Measured:
    # 34 found and 0 false at 5 fps, 32 and 1 false at 10 fps (recall 0.91-0.97: pairs
    # walking side by side, one blob, give one crossing; at 10 fps a couple turning back
    # together on the grass counted twice before only because their merged box touched the
    # line twice; at 5 fps a walker close behind another who had just lost his box was taken
    # for the same object). A floor, so that the tracker gets no worse on footage it was not
    # fitted to.
    score = _scores("plaza_pets_later.mp4", fps, ("east", "west"))
    n, hits, false = score["crossings"]
    least = {5.0: 34, 10.0: 32}[fps]
    assert n == 35 and hits >= least and false <= 1, score


@RATES
def test_pedestrians_crossing_a_line_held_out_from_the_last_changes(fps: float) -> None:
    # 17 crossings (and 5 doubtful) of a third line on the later plaza footage (x = 0.85),
    # counted before the tracker was run with it: the turn-back depth, a point on the line
    # and the "same object" rule were fitted on the other lines' misses, not on this one.
    # Measured: 15 found and 1 false at 5 fps, 16 and 1 false at 10 fps (before those
    # changes: 15 + 2 false and 16 + 3 false). Missed: a man turning back 1.4 s after he
    # crossed, only 0.2 of his height past the line (under `turn_depth`, taken for jitter);
    # at 5 fps a man crossing high on the path among others. The false one, a man standing
    # with his feet on the line for 9 s, his legs alone moving (at 5 fps a track only ever on
    # them, at 10 fps his own track down to them, 4.7 s after he stepped on the line), is gone
    # since a crossing made on a box far shorter than a person at that row announces nothing,
    # as a piece of an object enters no zone. A floor, under the target.
    score = _scores("plaza_pets_later.mp4", fps, ("right",))
    n, hits, false = score["crossings"]
    least = {5.0: 15, 10.0: 16}[fps]
    assert n == 17 and hits >= least and false == 0, score


@RATES
def test_pedestrians_crossing_a_line_counted_before_any_tracker_ran_on_it(fps: float) -> None:
    # 19 crossings (and 1 doubtful) of a line at x = 0.6 on the later plaza footage, counted
    # on a slit image and crops before any tracker ran with that line, after the changes
    # made on the other lines' misses (a track out of another's box starting on its side, a
    # piece of an object crossing nothing). Measured: 16 found and 0 false at 5 fps, 17 and
    # 0 false at 10 fps (the tracker before those changes: 16 + 0 and 18 + 0, its 18th a
    # coasting prediction drifting over the line 0.9 s before the man it stood for). Missed: one
    # of a couple walking on the grass at the picture's bottom edge (one blob, feet out of the
    # picture), the far one of two men walking one behind the other (a blob taller than one
    # person, not wider), and at 5 fps a woman walking right through a man walking left on the
    # line, whose track she took (her crossing read as his jitter). A floor.
    score = _scores("plaza_pets_later.mp4", fps, ("centre",))
    n, hits, false = score["crossings"]
    least = {5.0: 16, 10.0: 17}[fps]
    assert n == 19 and hits >= least and false == 0, score


@RATES
def test_pedestrians_crossing_a_fifth_line_counted_before_this_sessions_work(fps: float) -> None:
    # 22 crossings (and 1 doubtful) of a line at x = 0.45 (left of the lamp post) on the later
    # plaza footage, counted on a slit image and crops before any tracker ran with that line
    # and before the changes of the next two tests. Measured: 20 found and 0 false at 5 and
    # 10 fps before them, 21 and 0 since (the woman of the next test, whose miss was looked
    # at to make that change: on this line it is a fit, not a held-out result). 22 since the
    # ground plane (the test after the next): the second of a couple walking side by side on
    # the grass at the picture's bottom edge, looked at to make that change. A floor.
    score = _scores("plaza_pets_later.mp4", fps, ("lamp_left",))
    n, hits, false = score["crossings"]
    assert n == 22 and hits >= 22 and false == 0, score


@RATES
def test_pedestrians_crossing_a_sixth_line_held_out_from_the_ground_plane(fps: float) -> None:
    # 5 crossings (and 1 doubtful: a man stopping with his feet about 5 px from it) of a line
    # at x = 0.15 on the later plaza footage, counted on a slit image and crops and landed
    # before any tracker ran with it, after the ground-plane change (held out from it).
    # Measured: 5 found and 0 false at 5 and 10 fps, the same with that change off (a quiet
    # line, away from the crowd: it shows no harm, not a gain). A floor.
    score = _scores("plaza_pets_later.mp4", fps, ("far_left",))
    n, hits, false = score["crossings"]
    assert n == 5 and hits >= 5 and false == 0, score


@RATES
def test_a_walker_riding_a_shared_blob_keeps_her_side_when_she_comes_out(fps: float) -> None:
    # A woman walking right high on the path (x = 0.45, 48.4 s): her blob merged with that of
    # a man walking below her, two people tall; her track rode it, lost it, and she came out
    # of it past the line as a new track. That track starts from the side of an object of the
    # last frame whose box held it, if it is about as tall as that object: the merged blob is
    # not (48 px of 129), but she is as tall as her own last box, and she rode that blob. So
    # riders of a shared box are such objects too, measured by their own boxes.
    truth = 48.4
    assert truth in [c["t"] for c in LABELS["plaza_pets_later.mp4"]["crossings"]]
    on = _line_score("plaza_pets_later.mp4", "lamp_left", fps)
    off = _line_score("plaza_pets_later.mp4", "lamp_left", fps, inherit_riders=False)
    assert on[1] == off[1] + 1 and on[2] == off[2] == 0, (on, off)


@functools.cache
def _line_score(name: str, line: str, fps: float, **tracker: float) -> tuple[int, int, int]:
    """(true, found, false) for one line of a clip, under `TrackerConfig` settings."""
    lab = LABELS[name]
    rules = dict(
        lab["rules"], zones=[], tripwires=[w for w in lab["rules"]["tripwires"] if w["id"] == line]
    )
    events = rule_events(str(DATA / name), rules, fps, tracker=tracker)
    lab = {k: v for k, v in lab.items() if k not in ("entries", "dwells")}
    lab["crossings"] = [c for c in lab["crossings"] if c["line"] == line]
    return score_rules(lab, events)["crossings"]


@RATES
def test_a_couple_side_by_side_where_no_height_was_learned_is_cut_by_the_ground_plane(
    fps: float,
) -> None:
    # A couple walking left side by side on the grass at the bottom edge (x = 0.45, 23.2 and
    # 23.7 s): one blob 75-81 px wide and about one person tall, its feet out of the picture.
    # No typical height is learned that low, so it was never cut and her crossing was lost.
    # The height expected there now comes from a line fitted to the learned heights by row
    # (a ground plane), the blob's foot row taken from its top, and her track, on one of the
    # parts cut in the same frame as his, is not "the same object split in two" when it
    # crosses 0.4 s after him from a box of its own. Both are needed: without either, 21.
    # Made while looking at this couple (a known miss), so on this line it is a fit.
    truth = (23.2, 23.7)
    assert set(truth) <= {c["t"] for c in LABELS["plaza_pets_later.mp4"]["crossings"]}
    on = _line_score("plaza_pets_later.mp4", "lamp_left", fps)
    no_plane = _line_score("plaza_pets_later.mp4", "lamp_left", fps, ground_plane=False)
    no_apart = _line_score("plaza_pets_later.mp4", "lamp_left", fps, cut_apart=False)
    assert on[1] == no_plane[1] + 1 == no_apart[1] + 1, (on, no_plane, no_apart)
    assert on[2] == no_plane[2] == no_apart[2] == 0, (on, no_plane, no_apart)


@pytest.mark.parametrize(
    ("name", "line", "what"),
    [
        ("plaza_pets_later.mp4", "east", "a man walking left given the blob of three men (18.5 s)"),
        ("plaza_pets.mp4", "right", "a walker given a pair's blob, then lost 0.6 s (18.9 s)"),
    ],
)
def test_a_speed_read_from_a_merged_blob_carries_no_track_over_a_line(
    name: str, line: str, what: str
) -> None:
    # At 10 fps a track given a blob merged with other people's took the jump of that blob's
    # foot for its own speed (a man walking 14 px/s read 101 px/s: a body height per second
    # faster in one step), rode the next shared box on it and was carried over a line
    # nobody crossed then. Such a ride now announces no crossing: without that, a false
    # crossing on each line; with it none, and none of the line's true crossings lost.
    # Fitted on these two events; the same setting also takes 2 false crossings away at
    # 15 fps and 1 at 7.5 fps, rates never looked at while choosing it.
    on = _line_score(name, line, 10.0)
    off = _line_score(name, line, 10.0, surge=0.0)
    assert off[2] >= 1, (what, off)
    assert on[2] == 0 and on[1] >= off[1], (what, on, off)


@RATES
def test_pedestrians_entering_a_zone_in_a_plaza_crowd(fps: float) -> None:
    # 10 hand-counted entries into the zone round the lamp post (a group of three standing
    # there, walkers passing behind the pole). All are found, 0 false (10 true entries cannot
    # show <= 1 false per 100). With the blobs cut and nothing else, 6 false; then pieces of one
    # object joined again, tracks taken up again where they were lost, a track first seen
    # inside right beside one that entered (a walker cut by the pole) entering nothing, 3
    # false; then boxes given to tracks one to one at the least total cost of distance,
    # overlap and colours (a walker leaving the group no longer takes a standing man's
    # track), 1 false; then a track born inside within a body's height of a missed or
    # coasting track that entered (the man leaving the group after 14 s, picked up anew while
    # his old track still rode the group's blob) entering nothing, 0 false.
    n, hits, false = _plaza(fps)["entries"]
    assert (n, hits, false) == (10, 10, 0), _plaza(fps)


@RATES
def test_people_standing_in_a_plaza_crowd_dwell(fps: float) -> None:
    # 3 hand-counted stays over the 4 s dwell time in the same zone (two men side by side
    # for 14-16 s, a third with them for 5 s; all other stays are 2.7 s or shorter). Measured:
    # all 3 found within 2 s of the threshold, 0 false. With the blobs cut and nothing else,
    # 4 false; with the greedy association 2 found and 1 false (a walker leaving the group
    # took a standing man's track, and the track restarted on him dwelt again).
    # At 10 fps before the settings were in seconds: 2 found, 0 false.
    n, hits, false = _plaza(fps)["dwells"]
    assert (n, hits, false) == (3, 3, 0), _plaza(fps)


@RATES
def test_dwell_for_people_standing_still_indoors(fps: float) -> None:
    # At 10 fps before the settings were in seconds: a piece of the standing woman (her
    # arm, a track of its own) dwelt as well, and the man's dwell came 2.8 s late from a
    # piece of him.
    ev = _events("indoor_hall.mp4", fps)
    lab = LABELS["indoor_hall.mp4"]
    dwell = [e for e in ev if e.type == "dwell"]
    threshold = lab["rules"]["zones"][0]["dwell_s"]
    assert len(dwell) == len(lab["dwells"]), [(e.ts, e.track) for e in dwell]
    for e, truth in zip(dwell, lab["dwells"], strict=True):
        # Found within 2 s of the moment the stay reached the threshold.
        assert 0 <= e.ts - (truth["enter"] + threshold) <= 2.0 + 0.5, (e.ts, truth)


@pytest.mark.parametrize(
    "name", ["plaza_pets.mp4", "road_topdown.mp4", "indoor_hall.mp4", "plaza_pets_later.mp4"]
)
def test_clean_real_clips_raise_no_quality_fault(name: str) -> None:
    clip = load_clip(str(DATA / name), 5.0)
    out, _ = run_real(clip, None, len(clip.frames), len(clip.frames), seed=1)
    assert out.onsets == []


@pytest.mark.parametrize(
    ("name", "fault", "start_index", "why"),
    [
        ("indoor_hall.mp4", "too_dark", 0, "a dimmed view keeps its structure: dark, not covered"),
        (
            "plaza_pets.mp4",
            "occlusion",
            0,
            "a dark cover over all but a corner is not a lost signal",
        ),
        ("plaza_pets.mp4", "signal_loss", 0, "a blue no-signal screen with a caption still is"),
        ("road_topdown.mp4", "stripes", 0, "bars that change a plain view's cell layout"),
        ("road_topdown.mp4", "occlusion", 1, "a cover on a plain view, by brightness"),
        ("road_topdown.mp4", "ptz_drift", 2, "drift over plain asphalt, from its fine grain"),
        (
            "road_topdown.mp4",
            "scene_change",
            0,
            "plain asphalt moved by a quarter while a car passes: the grain matches nowhere near",
        ),
        (
            "road_topdown.mp4",
            "occlusion",
            0,
            "a cover over all but a corner of plain asphalt, as dim as a white car's exposure dip",
        ),
        (
            "plaza_pets_later.mp4",
            "scene_change",
            2,
            "a view moved by a quarter, seen as motion over all but a few blocks: judged on all",
        ),
        (
            "road_topdown.mp4",
            "shake",
            0,
            "shake over plain asphalt while a car crosses: the grain registered on the learned one",
        ),
    ],
)
def test_faults_found_on_real_footage(name: str, fault: str, start_index: int, why: str) -> None:
    # The bench's own trials (bench/vision_quality.py --videos), cut short.
    start = (30, 60, 90)[start_index]
    clip = load_clip(str(DATA / name), 5.0, max_frames=start + 10)
    out, _ = run_real(clip, fault, start, start + 10, trial_seed(fault, start_index, name))
    assert first_found(out, fault, start) is not None, (why, out.active[start:])
    assert not [o for o in out.onsets if o[0] < start], out.onsets


def test_plain_view_keeps_its_grain_in_a_saved_reference() -> None:
    from vision.frames import prepare
    from vision.quality import QualityAnalyzer
    from vision.reference import Reference

    def learned(name: str) -> Reference:
        clip = load_clip(str(DATA / name), 5.0, max_frames=12)
        qa = QualityAnalyzer()
        for img, t in zip(clip.frames, clip.ts, strict=True):
            h, w = img.shape[:2]  # the bench's camera view: the centre 2/3
            view = img[h // 6 : h // 6 + int(h * VIEW), w // 6 : w // 6 + int(w * VIEW)]
            qa.update(prepare(Frame(np.ascontiguousarray(view), t, t)))
        assert qa.ref.ready
        return qa.ref

    road = learned("road_topdown.mp4")  # plain asphalt: judged by its fine grain
    assert road.plain() and road.grain is not None and road.grain_ncc > 0.3
    back = Reference.from_bytes(road.to_bytes())
    assert back.grain is not None and back.grain_ncc == pytest.approx(road.grain_ncc)
    assert np.abs(back.grain - road.grain).max() < 0.05
    plaza = learned("plaza_pets.mp4")  # textured: no grain kept
    assert not plaza.plain() and plaza.grain is None
    assert Reference.from_bytes(plaza.to_bytes()).grain is None


def test_check_command_takes_rules_and_says_what_is_wrong(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gridwatch.cli import app

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(LABELS["road_topdown.mp4"]["rules"]), encoding="utf-8")
    clip = str(DATA / "road_topdown.mp4")
    res = CliRunner().invoke(app, ["vision", "check", clip, "--zones", str(rules), "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert sum(r["type"] == "tripwire" for r in rows) == len(
        LABELS["road_topdown.mp4"]["crossings"]
    )
    # Out of range: a plain message and exit 2, no traceback.
    res = CliRunner().invoke(app, ["vision", "check", clip, "--fps", "40"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "30" in res.output
    # A tripwire drawn inside a privacy mask is pointed out.
    masked = dict(LABELS["road_topdown.mp4"]["rules"])
    masked["privacy"] = [{"points": [[0, 0.3], [1, 0.3], [1, 0.7], [0, 0.7]]}]
    rules.write_text(json.dumps(masked), encoding="utf-8")
    res = CliRunner().invoke(
        app, ["vision", "check", clip, "--zones", str(rules), "--max-frames", "3"]
    )
    assert "rule 'mid' lies 100% inside privacy masks" in res.output
    rules.write_text('{"zones": [{"id": "x"}]}', encoding="utf-8")
    res = CliRunner().invoke(app, ["vision", "check", clip, "--zones", str(rules)])
    assert res.exit_code == 2 and "zones.0.polygon: Field required" in res.output


def test_rule_scores_match_each_line_and_zone_alone() -> None:
    # A crossing of one line never stands for a labelled crossing of another (nor an entry
    # into one zone for another): with several lines on a clip, matching by time alone would
    # hide a miss behind another line's event.
    from types import SimpleNamespace as Ev

    lab = {
        "rules": {"zones": [{"id": "z", "dwell_s": 4.0}]},
        "crossings": [{"line": "a", "t": 1.0}, {"line": "b", "t": 9.0}],
        "entries": [{"zone": "z", "t": 2.0}],
    }
    events = [
        Ev(type="tripwire", ts=1.2, line="b"),
        Ev(type="tripwire", ts=9.0, line="b"),
        Ev(type="zone", ts=2.1, zone="y"),
    ]
    assert score_rules(lab, events) == {"crossings": (2, 1, 1), "entries": (1, 0, 1)}
    events[0].line = "a"
    events[2].zone = "z"
    assert score_rules(lab, events) == {"crossings": (2, 2, 0), "entries": (1, 1, 0)}
