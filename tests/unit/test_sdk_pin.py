"""The SDK versions CI tests are the ones the pin allows."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_oldest_tier_runs_the_pins_lower_bound() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    [pin] = re.findall(r'"(claude-agent-sdk[^"]*)"', pyproject)
    lower = re.search(r">=\s*([0-9][0-9.]*)", pin)
    assert lower, pin
    tox = (ROOT / "tox.ini").read_text()
    oldest = re.search(r"\[testenv:sdk-oldest\].*?claude-agent-sdk==([0-9.]+)", tox, re.S)
    assert oldest, "tox.ini has no sdk-oldest env pinning claude-agent-sdk"
    assert oldest[1] == lower[1], (
        f"pyproject.toml allows claude-agent-sdk {pin} but tox -e sdk-oldest tests "
        f"{oldest[1]}: move them together"
    )
