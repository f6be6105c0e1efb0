"""The package's public names stay what they are whatever else gets imported.

A submodule named like a public name (``remote_executors/check.py`` beside
``rx.check``) would replace the lazily exported function with the module the
moment anything imported it."""

from __future__ import annotations

import importlib
import pkgutil

import remote_executors as rx


def test_no_submodule_shadows_a_public_name() -> None:
    modules = {m.name for m in pkgutil.iter_modules(rx.__path__)}
    assert not set(rx.__all__) & modules


def test_public_names_survive_importing_every_submodule() -> None:
    before = {name: getattr(rx, name) for name in rx.__all__}
    for info in pkgutil.walk_packages(rx.__path__, "remote_executors."):
        if info.name.endswith("__main__") or ".web" in info.name or ".testing" in info.name:
            continue  # a program, an optional extra, the test kit
        importlib.import_module(info.name)
    assert {name: getattr(rx, name) for name in rx.__all__} == before
    assert callable(rx.check) and not isinstance(rx.check, type(rx))
