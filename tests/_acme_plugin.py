"""A third-party executor package, ``rx-acme-plugin``, as pip would leave it on disk.

It adds the scheme ``acme://NAME`` through the ``remote_executors.executors``
entry point group: a ``*.dist-info`` with ``entry_points.txt`` beside the
module, found by ``importlib.metadata`` like any installed distribution once
its directory is on ``sys.path`` (or ``PYTHONPATH`` for a subprocess). The
executor is a ``FakeExecutor``; each ``from_spec`` is logged to ``$ACME_LOG``
(when set) so a test in another process can see which spec was reopened.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from remote_executors.executors.registry import ENTRY_POINT_GROUP

MODULE = """
import os

from remote_executors.executors.registry import parse_spec
from remote_executors.testing import FakeExecutor


class AcmeExecutor(FakeExecutor):
    opened = []

    @classmethod
    def from_spec(cls, spec):
        parsed = parse_spec(spec)
        cls.opened.append(spec)
        if os.environ.get("ACME_LOG"):
            with open(os.environ["ACME_LOG"], "a") as log:
                log.write(spec + "\\n")
        return cls(name="acme-" + parsed.target)

    @property
    def spec(self):
        return "acme://" + self.name[len("acme-"):]
"""


def install(site: Path, *, entry_points: str | None = None) -> Path:
    """Write the distribution into ``site``; return ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "rx_acme_plugin.py").write_text(textwrap.dedent(MODULE))
    info = site / "rx_acme_plugin-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rx-acme-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        entry_points or f"[{ENTRY_POINT_GROUP}]\nacme = rx_acme_plugin:AcmeExecutor\n"
    )
    return site
