"""pytest fixtures for the real-sshd test bed (see :mod:`remote_executors.testing.sshd`).

- ``rx_sshd`` (session): one :class:`SSHTestBed`, started once; starting
  costs a host-key generation and an sshd start.
- ``rx_model_url``: the ``ANTHROPIC_BASE_URL`` written into accounts' settings;
  ``None`` here, override it (conftest or plugin) to point at a stand-in model.
- ``rx_account_factory``: provisions accounts with fresh homes
  (``rx_account_factory("fish", noisy=True)``); at teardown it kills whatever
  those accounts left running.
- ``rx_account``: a fresh bash account with the CLI in ``~/.local/bin``.
  Parametrize it indirectly with a shell name or a dict of
  :meth:`SSHTestBed.account` options::

      @pytest.mark.parametrize("rx_account", SHELLS, indirect=True)
      def test_x(rx_account, rx_ssh_config): ...

- ``rx_ssh_config``: an :class:`SSHClientConfig` for ``rx_account`` in the
  test's ``tmp_path`` (``SSHExecutor(cfg.alias, ssh_config=cfg.path)``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import pytest

if TYPE_CHECKING:
    from .sshd import RemoteAccount, SSHClientConfig, SSHTestBed

__all__ = [
    "AccountFactory",
    "Isolated",
    "rx_account",
    "rx_account_factory",
    "rx_isolated",
    "rx_model_url",
    "rx_ssh_config",
    "rx_sshd",
]

_CLAUDE_ENV = "CLAUDE_CONFIG_DIR"
_DATA_ENV = "REMOTE_EXECUTORS_DATA_DIR"


@attrs.frozen
class Isolated:
    """Where this test's sessions are synced (``claude_dir``) and recorded (``data_dir``)."""

    claude_dir: Path
    data_dir: Path


def _at_default(name: str, default: Path) -> bool:
    value = os.environ.get(name)
    if not value:
        return True
    return os.path.realpath(os.path.expanduser(value)) == os.path.realpath(default)


@pytest.fixture
def rx_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Isolated:
    """Point ``CLAUDE_CONFIG_DIR`` and ``REMOTE_EXECUTORS_DATA_DIR`` at this test's temp dir.

    Only where they are unset or name the real defaults (``~/.claude`` and the
    user's records dir): a suite that already set them (in a conftest, say)
    keeps its own. Restored after the test.
    """
    from ..records import data_dir

    with monkeypatch.context() as scratch:
        scratch.delenv(_DATA_ENV, raising=False)
        real_data = data_dir()
    claude = Path(os.environ.get(_CLAUDE_ENV) or "")
    if _at_default(_CLAUDE_ENV, Path.home() / ".claude"):
        claude = tmp_path / "rx-claude"
        claude.mkdir(exist_ok=True)
        monkeypatch.setenv(_CLAUDE_ENV, str(claude))
    data = data_dir()
    if _at_default(_DATA_ENV, real_data):
        data = tmp_path / "rx-data"
        monkeypatch.setenv(_DATA_ENV, str(data))
    return Isolated(claude_dir=claude, data_dir=data)


class AccountFactory(Protocol):
    """Call signature of ``rx_account_factory``: :meth:`SSHTestBed.account`'s."""

    def __call__(self, shell: str | None = None, **options: Any) -> RemoteAccount: ...


@pytest.fixture(scope="session")
def rx_sshd() -> Iterator[SSHTestBed]:
    """The session's sshd on 127.0.0.1 (accounts mode as root, current-user otherwise)."""
    from .sshd import SSHTestBed

    with SSHTestBed() as bed:
        yield bed


@pytest.fixture
def rx_model_url() -> str | None:
    """Base URL of the stand-in Messages API for new accounts (None: none configured)."""
    return None


@pytest.fixture
def rx_account_factory(
    rx_sshd: SSHTestBed, rx_model_url: str | None, rx_isolated: Isolated
) -> Iterator[AccountFactory]:
    """Make accounts with fresh homes; their leftover processes die at teardown.

    Sessions on them are synced and recorded in the test's own dirs (``rx_isolated``).
    """
    made: list[RemoteAccount] = []

    def make(shell: str | None = None, **options: Any) -> RemoteAccount:
        options.setdefault("model_url", rx_model_url)
        account = rx_sshd.account(shell, **options)
        made.append(account)
        return account

    yield make
    for account in made:
        rx_sshd.kill_account_processes(account)


@pytest.fixture
def rx_account(request: pytest.FixtureRequest, rx_account_factory: AccountFactory) -> RemoteAccount:
    """A fresh account; indirect parameter: a shell name or a dict of account options."""
    param = getattr(request, "param", None)
    if param is None:
        return rx_account_factory()
    if isinstance(param, str):
        return rx_account_factory(param)
    if isinstance(param, Mapping):
        return rx_account_factory(**dict(param))
    raise TypeError(f"rx_account parameter must be a shell name or a dict, not {param!r}")


@pytest.fixture
def rx_ssh_config(
    rx_sshd: SSHTestBed, rx_account: RemoteAccount, tmp_path: Path
) -> SSHClientConfig:
    """An ssh_config file in ``tmp_path`` whose ``alias`` reaches ``rx_account``."""
    return rx_sshd.client_config(rx_account, tmp_path / "ssh")
