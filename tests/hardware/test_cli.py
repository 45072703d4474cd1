"""`gridwatch id decode/new` and `gridwatch optics`: readable tables, --json, clear errors."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from hardware.cli import register

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("noop")(lambda: None)  # typer needs 2+ commands to keep sub-command names
    register(app)
    return app


def test_id_decode_table_and_json(app: typer.Typer) -> None:
    out = runner.invoke(app, ["id", "decode", "36012100001320000007"])
    assert out.exit_code == 0, out.output
    assert "Jiangxi" in out.output and "IP camera" in out.output and "000007" in out.output
    js = runner.invoke(app, ["id", "decode", "36012100001320000007", "--json", "--edition", "2016"])
    data = json.loads(js.stdout)
    assert data["type_code"] == 132 and data["kind"] == "ip_camera" and data["edition"] == 2016
    div = json.loads(runner.invoke(app, ["id", "decode", "360121", "--json"]).stdout)
    assert div["level"] == "county" and not div["is_device_id"]


def test_id_decode_bad_code_exits_nonzero_naming_digits(app: typer.Typer) -> None:
    out = runner.invoke(app, ["id", "decode", "36992100001320000007"])
    assert out.exit_code == 2
    assert "digits 3-4 (city code)" in out.output
    assert "Traceback" not in out.output


def test_id_new_allocates_distinct_ids(app: typer.Typer) -> None:
    out = runner.invoke(
        app, ["id", "new", "--region", "360121", "--kind", "camera", "--count", "3", "--json"]
    )
    assert out.exit_code == 0, out.output
    ids = [row["id"] for row in json.loads(out.stdout)]
    assert len(set(ids)) == 3 and all(i.startswith("36012100001310") for i in ids)
    bad = runner.invoke(app, ["id", "new", "--region", "360121", "--kind", "toaster"])
    assert bad.exit_code == 2 and "kind: 'toaster'" in bad.output


def test_optics_table_json_and_errors(app: typer.Typer) -> None:
    out = runner.invoke(
        app, ["optics", "--focal", "4", "--sensor", "1/2.8", "--resolution", "1920x1080"]
    )
    assert out.exit_code == 0, out.output
    assert "69.7" in out.output and "22.1" in out.output  # HFOV and observe range
    js = json.loads(
        runner.invoke(app, ["optics", "--focal", "2.8-12", "--sensor", "1/2.7", "--json"]).stdout
    )
    assert [r["focal_mm"] for r in js["at_focal"]] == [2.8, 12.0]
    for args, needle in (
        (["--focal", "-4"], "focal"),
        (["--focal", "4", "--sensor", "1/7"], "sensor"),
        (["--focal", "4", "--resolution", "abc"], "resolution"),
    ):
        bad = runner.invoke(app, ["optics", *args])
        assert bad.exit_code == 2 and needle + ":" in bad.output and "allowed" in bad.output
