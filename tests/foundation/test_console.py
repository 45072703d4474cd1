"""The CLI's one error printer: one unwrapped line, markup in the message shown as written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gridwatch.cli import app


def test_a_long_error_is_one_line(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 8) / "nope.avi"
    res = CliRunner().invoke(app, ["vision", "check", str(deep)])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(deep) in lines[0] and "no such file" in lines[0], res.output


def test_markup_in_an_error_is_printed_as_written(tmp_path: Path) -> None:
    odd = tmp_path / "[bold]cam[/bold].avi"
    res = CliRunner().invoke(app, ["vision", "check", str(odd)])
    assert res.exit_code == 2
    assert "[bold]cam[/bold].avi" in res.output, res.output
