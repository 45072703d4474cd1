"""Every setting is documented in the README (the settings tables are the user's reference)."""

from __future__ import annotations

from pathlib import Path

from gridwatch.settings import Settings
from ingest.config import IngestSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    names = [f"GRIDWATCH_{n.upper()}" for n in Settings.model_fields]
    names += [f"GRIDWATCH_INGEST_{n.upper()}" for n in IngestSettings.model_fields]
    missing = [n for n in names if f"`{n}`" not in README]
    assert missing == []
