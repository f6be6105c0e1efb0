"""Which names an ssh config knows (cli/_aliases.py): Host lines, Includes, Match criteria."""

from __future__ import annotations

from pathlib import Path

import pytest

from remote_executors.cli._aliases import is_known, unknown_alias_text


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("REMOTE_EXECUTORS_CONFIG_DIR", str(tmp_path / "settings"))
    (tmp_path / "more").write_text("Host gpu-*\n    User me\n")
    path = tmp_path / "config"
    path.write_text(
        'Host box "build box" !box-old\n'
        "    HostName 10.0.0.1\n"
        f"Include {tmp_path}/more\n"
        "Match originalhost lab1,lab2 user me\n"
        "    Port 2222\n"
        "Host *\n"
        "    ServerAliveInterval 5\n"
        "Match all\n"
        "    Compression yes\n"
    )
    return str(path)


@pytest.mark.parametrize("name", ["box", "build box", "gpu-7", "lab2", "me@box"])
def test_names_the_config_knows(config: str, name: str) -> None:
    assert is_known(name, config)


@pytest.mark.parametrize("name", ["bxo", "box-old", "gpu", "lab3"])
def test_names_it_does_not(config: str, name: str) -> None:
    """``Host *`` and ``Match all`` apply to every name but know none of them."""
    assert not is_known(name, config)


def test_a_match_decided_by_a_command_could_be_anything(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text('Match exec "test %h = x"\n    Port 2\n')
    assert is_known("whatever", str(path))


def test_close_names_are_suggested(config: str) -> None:
    text = unknown_alias_text("bxo", config)
    assert text.startswith("Unknown host bxo: it is not a Host in " + config)
    assert text.endswith("Did you mean box?")
    assert "Add a Host zzzz block" in unknown_alias_text("zzzz", config)
