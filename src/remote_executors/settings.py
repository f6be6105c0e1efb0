"""The configured remote executors: the user's settings store.

One small JSON file under the user's config dir
(``$REMOTE_EXECUTORS_CONFIG_DIR``, else platformdirs' ``user_config_dir``)::

    <config dir>/settings.json          the settings (0600)
    <config dir>/.settings.json.lock    flock'ed around every change

    {
      "version": 1,
      "remote_executors": ["box", "gpu"],
      "hosts": {
        "box": {"claude_path": "/opt/claude/bin/claude",
                "path_map": {"/home/me/code": "/srv/me/code"}}
      }
    }

``remote_executors`` is the ordered list of executors: ssh aliases, and specs
of other kinds (``docker://c``, ``k8s://ns/pod``); ``hosts`` holds the options
of the aliases that have any (ssh_config, claude_path, path_map,
accept_new_host_keys, connect_timeout, forward_credentials, reattach_within,
warm_spawn). A host without an entry uses
:class:`~remote_executors.SSHExecutor`'s defaults. An ``ssh://box?...`` spec
given to :meth:`SettingsStore.add` is kept as the alias ``box`` with its
options, so a file that holds only SSH hosts stays readable by versions that
know nothing of specs (format version 1); one that lists another kind is
written as version 2.

Guarantees:

* Every alias and option is validated before it is stored and again when the
  file is read; bad input raises
  :class:`~remote_executors.errors.InvalidInput` and nothing is written.
* Writes are atomic and durable (temp file, fsync, rename, fsync of the
  directory): a reader sees the whole old file or the whole new one. A new
  file is 0600 and a directory this module creates 0700.
* Changes (:meth:`SettingsStore.add`, :meth:`~SettingsStore.update`,
  :meth:`~SettingsStore.remove`) read, modify and write under an exclusive
  ``flock`` on the lock file, so concurrent changes from threads or processes
  are never lost. Reads take no lock.
* A file that cannot be trusted (not JSON, wrong shape, an invalid alias or
  option, a newer format version) raises :class:`SettingsError` naming the
  file and what to do. It is never replaced or "repaired": a change to a
  corrupt file fails the same way and leaves it byte-identical.
* Keys this version does not know (at the top level or in a host's entry)
  are kept when the file is rewritten, so an older version does not drop what
  a newer one added under the same format version.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import types
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from remote_executors._store_file import install_atomically, locked, user_dir
from remote_executors.errors import ExecutorError, InvalidInput
from remote_executors.executors._validate import check_host, check_path, remote_prefix
from remote_executors.executors.registry import check_spec, normalize_spec

if TYPE_CHECKING:
    # Imported when an executor is built: reading settings stays quick (the CLI).
    from remote_executors.executors.base import Executor

__all__ = [
    "CONFIG_DIR_ENV",
    "FORMAT_VERSION",
    "HostSettings",
    "Settings",
    "SettingsError",
    "SettingsStore",
    "config_dir",
    "executor_for",
]

CONFIG_DIR_ENV = "REMOTE_EXECUTORS_CONFIG_DIR"
"""Environment variable that overrides :func:`config_dir` (tests, sandboxes, several profiles)."""

FORMAT_VERSION = 2
"""The highest version read; a file with a higher one is not read. Version 1 (ssh
aliases only) is still written while the file lists nothing else."""

_APP_NAME = "remote-executors"
_FILE_NAME = "settings.json"
_LOCAL = "local"
_OPTIONS = (
    "ssh_config",
    "claude_path",
    "path_map",
    "accept_new_host_keys",
    "connect_timeout",
    "forward_credentials",
    "reattach_within",
    "warm_spawn",
)
_TOP_KEYS = ("version", "remote_executors", "hosts")


def config_dir() -> Path:
    """Return the directory the settings file lives in.

    ``$REMOTE_EXECUTORS_CONFIG_DIR`` when set and non-empty (``~`` expanded,
    made absolute now so a later ``chdir`` cannot move the store), else
    ``platformdirs.user_config_dir("remote-executors", appauthor=False)``.
    """
    return user_dir(CONFIG_DIR_ENV, "config")


class SettingsError(ExecutorError):
    """The settings file cannot be used, or a change does not fit what it holds.

    ``host`` is ``"local"`` for a problem with the file itself (unreadable,
    not JSON, wrong shape, newer version) and the alias for a change that does
    not fit (adding an alias that is already configured, updating one that is
    not). ``path`` is the settings file. The file is never changed when this
    is raised.
    """

    def __init__(self, message: str, *, host: str, path: Path, detail: str = "") -> None:
        super().__init__(message, host=host, detail=detail)
        self.path = path


# -- validation ---------------------------------------------------------------


def _check_alias(_: object, __: attrs.Attribute[str], value: str) -> None:
    if isinstance(value, str) and "://" in value:
        check_spec(value)
        scheme = value.partition("://")[0]
        if scheme == "ssh":
            raise InvalidInput(
                f"Refusing {value!r} as a host entry: an ssh:// executor is kept as its alias "
                "with options (SettingsStore.add accepts the spec and does that).",
                host=value,
            )
        return
    check_host(value)


def _check_name(name: str) -> None:
    _check_alias(None, None, name)  # type: ignore[arg-type]  # the validator, called directly


def _entry_key(name: str) -> tuple[str, dict[str, Any]]:
    """(the entry's key, options a spec carries): ``ssh://box?x=y`` is ``box`` with
    ``x=y``; a bare alias or another kind's spec is itself, with none."""
    if not isinstance(name, str) or "://" not in name:
        return name, {}
    spec = normalize_spec(name)
    if not spec.startswith("ssh://"):
        return spec, {}
    from remote_executors.executors.ssh._spec import options_from_spec

    host, options = options_from_spec(spec)
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise InvalidInput(
            f"{', '.join(unknown)} in {name!r} cannot be kept in the settings (they hold "
            f"{', '.join(_OPTIONS)}); pass such options to SSHExecutor directly.",
            host=host,
        )
    return host, options


def _check_absolute(value: object, *, host: str, what: str, where: str) -> str:
    """An absolute path without control characters; ``where`` says which machine."""
    if not isinstance(value, str):
        raise InvalidInput(
            f"Invalid {what} {value!r} for {host}: expected an absolute {where} path "
            f"(a string), not {type(value).__name__}.",
            host=host,
        )
    check_path(value, host=host, what=what)
    if not value.startswith("/"):
        raise InvalidInput(
            f"Refusing {what} {value!r} for {host}: it must be an absolute {where} path "
            "(starting with '/'; '~' is not expanded).",
            host=host,
        )
    return value


def _local_path(value: object) -> object:
    """Accept ``os.PathLike`` for local paths; the check itself is the validator's."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _check_ssh_config(record: HostSettings, _: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_absolute(value, host=record.host, what="ssh_config", where="local")


def _check_claude_path(record: HostSettings, _: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_absolute(value, host=record.host, what="claude_path", where="remote")


def _check_forward(record: HostSettings, _: attrs.Attribute[Any], value: object) -> None:
    from remote_executors.credentials import FORWARDABLE

    if value is not None and value not in FORWARDABLE:
        raise InvalidInput(
            f"Invalid forward_credentials {value!r} for {record.host}: expected one of "
            f"{', '.join(FORWARDABLE)} (or None: the host uses its own credentials).",
            host=record.host,
        )


def _freeze_path_map(value: object) -> object:
    """A read-only copy; the validator checks (and reports) anything that is not a mapping."""
    if value is None:
        return types.MappingProxyType({})
    if isinstance(value, Mapping):
        items = {_local_path(k): v for k, v in value.items()}
        return types.MappingProxyType(items)
    return value


def _check_path_map(record: HostSettings, _: attrs.Attribute[Any], value: object) -> None:
    host = record.host
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f"Invalid path_map {value!r} for {host}: expected a mapping of absolute local "
            "paths to remote paths (absolute, or relative to the remote home).",
            host=host,
        )
    for local, remote in value.items():
        _check_absolute(local, host=host, what="local path in path_map", where="local")
        if not isinstance(remote, str):
            raise InvalidInput(
                f"Invalid remote path {remote!r} in path_map for {host}: expected a string.",
                host=host,
            )
        # Absolute, or relative to the remote home ("code/x", "~/code/x").
        remote_prefix(remote, host=host)


def _check_bool(record: HostSettings, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidInput(
            f"Invalid {attribute.name} {value!r} for {record.host}: expected true or false.",
            host=record.host,
        )


def _default_false(value: object) -> object:
    """``None`` is the default (False), as for every other option."""
    return False if value is None else value


def _default_true(value: object) -> object:
    """``None`` is the default (True)."""
    return True if value is None else value


def _to_timeout(value: object) -> object:
    """Ints are seconds too; anything else is left for the validator to refuse."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_timeout(record: HostSettings, _: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, float) or not math.isfinite(value) or value <= 0:
        raise InvalidInput(
            f"Invalid connect_timeout {value!r} for {record.host}: expected a positive "
            "number of seconds (or None for the default).",
            host=record.host,
        )


def _check_reattach(record: HostSettings, _: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    from remote_executors.executors.ssh._executor import MAX_REATTACH_WITHIN

    if not isinstance(value, float) or not 0 <= value <= MAX_REATTACH_WITHIN:
        raise InvalidInput(
            f"Invalid reattach_within {value!r} for {record.host}: expected seconds from 0 "
            f"(a lost link ends the session) to {MAX_REATTACH_WITHIN:g}, or None for the "
            "default.",
            host=record.host,
        )


@attrs.frozen
class HostSettings:
    """One configured remote executor: an ssh alias and the options to reach it with.

    Every field is checked on construction (and by ``attrs.evolve``), raising
    :class:`~remote_executors.errors.InvalidInput`: ``host`` as
    :class:`~remote_executors.SSHExecutor` checks it, paths must be absolute
    (``ssh_config`` and ``path_map``'s keys on this machine, ``claude_path``
    on the host); ``path_map``'s values are absolute, or relative to the
    remote home (``"code/x"``, ``"~/code/x"``). ``None`` (and an empty
    ``path_map``) means :class:`~remote_executors.SSHExecutor`'s default.
    """

    host: str = attrs.field(validator=_check_alias)
    ssh_config: str | None = attrs.field(
        default=None, converter=_local_path, validator=_check_ssh_config
    )
    claude_path: str | None = attrs.field(default=None, validator=_check_claude_path)
    # Read-only; left out of the hash (a mappingproxy has none), still compared.
    path_map: Mapping[str, str] = attrs.field(
        factory=dict, converter=_freeze_path_map, validator=_check_path_map, hash=False
    )
    accept_new_host_keys: bool = attrs.field(
        default=False, converter=_default_false, validator=_check_bool
    )
    connect_timeout: float | None = attrs.field(
        default=None, converter=_to_timeout, validator=_check_timeout
    )
    forward_credentials: str | None = attrs.field(default=None, validator=_check_forward)
    """Opt-in: this machine's ``ANTHROPIC_API_KEY`` or ``CLAUDE_CODE_OAUTH_TOKEN`` is
    forwarded to sessions on the host when it has no credentials of its own."""

    def __attrs_post_init__(self) -> None:
        if self.is_spec and self.options():
            raise InvalidInput(
                f"{self.host} takes no SSH options ({', '.join(self.options())}): those are "
                "for ssh aliases.",
                host=self.host,
            )

    @property
    def is_spec(self) -> bool:
        """True for an executor of another kind, named by its spec (``docker://c``)."""
        return "://" in self.host

    @property
    def spec(self) -> str:
        """The spec that reopens this executor (``ssh://box?claude_path=...``)."""
        if self.is_spec:
            return self.host
        from remote_executors.executors.ssh._spec import spec_from_options

        return spec_from_options(self.host, self.options())

    reattach_within: float | None = attrs.field(
        default=None, converter=_to_timeout, validator=_check_reattach
    )
    warm_spawn: bool = attrs.field(default=True, converter=_default_true, validator=_check_bool)
    """False: no spare channel kept open and waiting for the next spawn (see
    :class:`~remote_executors.SSHExecutor`)."""

    def options(self) -> dict[str, Any]:
        """The options that differ from the defaults, as keyword arguments."""
        out: dict[str, Any] = {}
        if self.ssh_config is not None:
            out["ssh_config"] = self.ssh_config
        if self.claude_path is not None:
            out["claude_path"] = self.claude_path
        if self.path_map:
            out["path_map"] = dict(self.path_map)
        if self.accept_new_host_keys:
            out["accept_new_host_keys"] = True
        if self.connect_timeout is not None:
            out["connect_timeout"] = self.connect_timeout
        if self.forward_credentials is not None:
            out["forward_credentials"] = self.forward_credentials
        if self.reattach_within is not None:
            out["reattach_within"] = self.reattach_within
        if not self.warm_spawn:
            out["warm_spawn"] = False
        return out

    def executor(self) -> Executor:
        """The executor: an :class:`~remote_executors.SSHExecutor` for an alias with
        these options, or what the spec names."""
        if self.is_spec:
            from remote_executors.executors.registry import executor_from_spec

            return executor_from_spec(self.host)
        from remote_executors.executors.ssh import SSHExecutor

        return SSHExecutor(self.host, **self.options())


def _check_hosts(_: object, __: attrs.Attribute[Any], value: tuple[HostSettings, ...]) -> None:
    seen: set[str] = set()
    for entry in value:
        if not isinstance(entry, HostSettings):
            raise InvalidInput(
                f"Invalid remote executor {entry!r}: expected HostSettings.", host=_LOCAL
            )
        if entry.host in seen:
            raise InvalidInput(
                f"Remote executor {entry.host!r} is listed twice; each alias appears once.",
                host=entry.host,
            )
        seen.add(entry.host)


def _to_tuple(value: Iterable[HostSettings]) -> tuple[HostSettings, ...]:
    return tuple(value)


@attrs.frozen
class Settings:
    """The whole settings file: the configured remote executors, in order."""

    remote_executors: tuple[HostSettings, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_check_hosts
    )

    def get(self, host: str) -> HostSettings | None:
        """The settings of alias (or spec) ``host``, or ``None`` if it is not configured."""
        host = _entry_key(host)[0]
        for entry in self.remote_executors:
            if entry.host == host:
                return entry
        return None

    @property
    def hosts(self) -> builtins.list[str]:
        """The configured aliases, in order."""
        return [entry.host for entry in self.remote_executors]


# -- the file -----------------------------------------------------------------


class _Invalid(ValueError):
    """The file's content is unusable; the message says where and why."""


@attrs.frozen
class _Document:
    """A parsed file: the settings plus what this version does not know, to keep it."""

    settings: Settings
    extra: dict[str, Any]  # unknown top-level keys
    host_extra: dict[str, dict[str, Any]]  # alias -> unknown keys of its entry


def _parse(data: object) -> _Document:
    if not isinstance(data, dict):
        raise _Invalid(f"it holds a JSON {_json_type(data)}, not an object")
    version = data.get("version")
    if type(version) is not int or version < 1:
        raise _Invalid(f'its "version" is {version!r}, expected {FORMAT_VERSION}')
    if version > FORMAT_VERSION:
        raise _Invalid(
            f"it was written by a newer remote-executors (format version {version}; this "
            f"one reads {FORMAT_VERSION}): upgrade remote-executors to use it"
        )
    aliases = data.get("remote_executors", [])
    if not isinstance(aliases, list):
        raise _Invalid(f'"remote_executors" is a JSON {_json_type(aliases)}, not a list')
    hosts = data.get("hosts", {})
    if not isinstance(hosts, dict):
        raise _Invalid(f'"hosts" is a JSON {_json_type(hosts)}, not an object')
    orphans = [name for name in hosts if name not in aliases]
    if orphans:
        raise _Invalid(
            f'"hosts" has options for {", ".join(map(repr, orphans))}, which '
            '"remote_executors" does not list: add the alias to the list or delete its entry'
        )
    entries: list[HostSettings] = []
    host_extra: dict[str, dict[str, Any]] = {}
    for index, alias in enumerate(aliases):
        where = f"remote_executors[{index}]"
        if not isinstance(alias, str):
            raise _Invalid(f"{where} is a JSON {_json_type(alias)}, not an alias string")
        if version == 1 and "://" in alias:
            raise _Invalid(f"{where} is a spec ({alias!r}), which version 1 does not hold")
        options = hosts.get(alias, {})
        if not isinstance(options, dict):
            raise _Invalid(f'hosts["{alias}"] is a JSON {_json_type(options)}, not an object')
        known = {key: options[key] for key in _OPTIONS if key in options}
        try:
            entries.append(HostSettings(alias, **known))
        except InvalidInput as exc:
            raise _Invalid(f"{where}: {exc.message}") from None
        extra = {key: value for key, value in options.items() if key not in _OPTIONS}
        if extra:
            host_extra[alias] = extra
    try:
        settings = Settings(tuple(entries))
    except InvalidInput as exc:
        raise _Invalid(exc.message) from None
    extra = {key: value for key, value in data.items() if key not in _TOP_KEYS}
    return _Document(settings, extra, host_extra)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _to_json(document: _Document) -> dict[str, Any]:
    specs = any(entry.is_spec for entry in document.settings.remote_executors)
    out: dict[str, Any] = {
        # Version 1 while only aliases are listed: older versions keep reading it.
        "version": FORMAT_VERSION if specs else 1,
        "remote_executors": document.settings.hosts,
    }
    hosts: dict[str, Any] = {}
    for entry in document.settings.remote_executors:
        options = {**document.host_extra.get(entry.host, {}), **entry.options()}
        if options:
            hosts[entry.host] = options
    out["hosts"] = hosts
    for key, value in document.extra.items():
        out.setdefault(key, value)
    return out


def _display(path: Path) -> str:
    """``~/...`` for a path in the user's home, as people write it."""
    home = os.path.expanduser("~")
    text = str(path)
    if home not in ("", "/") and text.startswith(home.rstrip("/") + "/"):
        return "~/" + text[len(home.rstrip("/")) + 1 :]
    return text


class SettingsStore:
    """The settings file: load it, and add, update or remove remote executors.

    Cheap to construct; holds no open files. ``path`` defaults to
    ``config_dir() / "settings.json"``, resolved once here. Nothing is created
    until the first change, so reading a missing file leaves no trace.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            self._path = config_dir() / _FILE_NAME
        else:
            self._path = Path(os.path.abspath(os.fspath(path)))

    @property
    def path(self) -> Path:
        """The settings file."""
        return self._path

    def __repr__(self) -> str:
        return f"SettingsStore({str(self._path)!r})"

    def load(self) -> Settings:
        """Read the settings; a missing file reads as empty :class:`Settings`.

        Raises :class:`SettingsError` if the file cannot be read or trusted
        (see the module docs); the file is left as it is.
        """
        return self._read().settings

    def list(self) -> builtins.list[HostSettings]:
        """The configured remote executors, in order."""
        return list(self.load().remote_executors)

    def add(self, host: str, /, **options: Any) -> HostSettings:
        """Configure a new remote executor ``host`` with ``options``; return its settings.

        ``host`` is an ssh alias or a spec (``ssh://box?claude_path=...`` is kept
        as ``box`` with its options; ``docker://c`` as it is). ``options`` are
        :class:`HostSettings` fields (given ones win over a spec's). Raises
        :class:`~remote_executors.errors.InvalidInput` for a bad alias or
        option and :class:`SettingsError` if ``host`` is already configured
        (use :meth:`update`) or the file cannot be trusted; nothing is
        written then.
        """
        host, carried = _entry_key(host)
        options = {**carried, **options}
        _check_name(host)
        _check_option_names(host, options)
        entry = HostSettings(host, **options)
        with self._locked():
            document = self._read()
            if document.settings.get(host) is not None:
                raise SettingsError(
                    f"Remote executor {host!r} is already configured in {_display(self._path)}; "
                    "use update to change its options, or remove it first.",
                    host=host,
                    path=self._path,
                )
            settings = Settings((*document.settings.remote_executors, entry))
            self._write(attrs.evolve(document, settings=settings))
        return entry

    def update(self, host: str, /, **options: Any) -> HostSettings:
        """Change some options of the configured ``host``; return its new settings.

        Options not given keep their values; ``None`` resets one to the
        default. Raises :class:`~remote_executors.errors.InvalidInput` for a
        bad option and :class:`SettingsError` if ``host`` is not configured
        (use :meth:`add`) or the file cannot be trusted; nothing is written
        then.
        """
        host, carried = _entry_key(host)
        options = {**carried, **options}
        _check_name(host)
        _check_option_names(host, options)
        HostSettings(host, **options)  # refuse bad values before touching the file
        with self._locked():
            document = self._read()
            current = document.settings.get(host)
            if current is None:
                raise SettingsError(
                    f"Remote executor {host!r} is not configured in {_display(self._path)}; "
                    "use add to configure it.",
                    host=host,
                    path=self._path,
                )
            new = attrs.evolve(current, **options)
            settings = Settings(
                tuple(new if e.host == host else e for e in document.settings.remote_executors)
            )
            if settings != document.settings:
                self._write(attrs.evolve(document, settings=settings))
        return new

    def remove(self, host: str, /) -> bool:
        """Forget the remote executor ``host`` and its options; True if it was configured.

        Nothing else is touched (sessions recorded on it keep their records).
        """
        host = _entry_key(host)[0]
        _check_name(host)
        with self._locked():
            document = self._read()
            if document.settings.get(host) is None:
                return False
            settings = Settings(e for e in document.settings.remote_executors if e.host != host)
            host_extra = {k: v for k, v in document.host_extra.items() if k != host}
            self._write(attrs.evolve(document, settings=settings, host_extra=host_extra))
        return True

    def replace_hosts(self, hosts: Iterable[str], /) -> builtins.list[str]:
        """Make ``hosts`` the configured executors, in that order, in one write.

        Those already configured keep their options; new ones get the
        defaults; the others are forgotten (as :meth:`remove` does). Every
        name is checked first: :class:`~remote_executors.errors.InvalidInput`
        for a bad one, one listed twice included, and nothing is written.
        Returns the configured list as it is now.
        """
        names = builtins.list(hosts)
        keys = Settings(HostSettings(name) for name in names).hosts  # checks every name
        with self._locked():
            document = self._read()
            current = document.settings
            settings = Settings(current.get(name) or HostSettings(name) for name in keys)
            if settings != current:
                host_extra = {k: v for k, v in document.host_extra.items() if k in keys}
                self._write(attrs.evolve(document, settings=settings, host_extra=host_extra))
        return settings.hosts

    # -- internals ---------------------------------------------------------

    def _error(self, problem: str, detail: str = "") -> SettingsError:
        return SettingsError(
            f"Settings file {_display(self._path)} {problem}: fix or move it aside; "
            "it was not changed.",
            host=_LOCAL,
            path=self._path,
            detail=detail,
        )

    def _read(self) -> _Document:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return _Document(Settings(), {}, {})
        except OSError as exc:
            raise SettingsError(
                f"Cannot read the settings file {_display(self._path)}: "
                f"{exc.strerror or exc}. Check its permissions.",
                host=_LOCAL,
                path=self._path,
            ) from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._error(f"is not valid UTF-8 (byte {exc.start})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise self._error(
                f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
        except RecursionError:
            raise self._error("is not valid JSON (nested too deeply)") from None
        try:
            return _parse(data)
        except _Invalid as exc:
            raise self._error(f"is not valid settings ({exc})") from None

    def _write(self, document: _Document) -> None:
        # ensure_ascii: lone surrogates (undecodable file names) survive as JSON escapes.
        text = json.dumps(_to_json(document), ensure_ascii=True, indent=2) + "\n"
        install_atomically(self._path, text.encode("ascii"))

    def _locked(self) -> AbstractContextManager[None]:
        """The store's flock (excludes other threads and processes)."""
        return locked(self._path.parent / f".{self._path.name}.lock")


def _check_option_names(host: str, options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise InvalidInput(
            f"Unknown option(s) {', '.join(unknown)} for {host}; known options: "
            f"{', '.join(_OPTIONS)}.",
            host=host if isinstance(host, str) and host else repr(host),
        )


def executor_for(
    host: str, store: SettingsStore | None = None, *, ssh_config: str | None = None
) -> Executor:
    """The executor ``host`` names: an ssh alias, ``local`` or a spec (``ssh://box``,
    ``docker://c``, ...; see :func:`~remote_executors.executor_from_spec`).

    An ssh alias configured in ``store`` (default: the user's settings file) is
    built with its configured options; options the spec carries fill only
    what the settings leave unset, so changed settings apply to resumes of
    sessions recorded earlier. An alias that is not configured gets
    :class:`~remote_executors.SSHExecutor`'s defaults, the spec's options and
    ``ssh_config`` (when given and the spec names none). Raises
    :class:`SettingsError` if the settings file cannot be trusted, rather than
    silently ignoring the options it may hold.
    """
    from remote_executors.executors.registry import executor_from_spec

    spec = normalize_spec(host)
    if not spec.startswith("ssh://"):
        if spec == _LOCAL:
            return executor_from_spec(spec)
        entry = (store if store is not None else SettingsStore()).load().get(spec)
        return entry.executor() if entry is not None else executor_from_spec(spec)
    from remote_executors.executors.ssh import SSHExecutor
    from remote_executors.executors.ssh._spec import options_from_spec

    alias, options = options_from_spec(spec)
    entry = (store if store is not None else SettingsStore()).load().get(alias)
    if entry is not None:
        recorded_map = options.get("path_map") or {}
        options.update(entry.options())
        if recorded_map:
            # A directory picked for one session (the web UI's) maps its project
            # still; the configured map decides every prefix it names.
            options["path_map"] = {**recorded_map, **options.get("path_map", {})}
    elif ssh_config is not None:
        options.setdefault("ssh_config", ssh_config)
    return SSHExecutor(alias, **options)
