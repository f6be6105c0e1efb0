"""Spec strings: the name that reopens an executor, and the table of schemes behind them.

A spec is ``local`` (this machine) or ``SCHEME://TARGET[?KEY=VALUE&...]``:
``ssh://box``, ``docker://c``, ``podman://c``, ``k8s://ns/pod/container``.
Each executor parses its own scheme (``from_spec``) and gives its own spec
back (``spec``); this module only maps schemes to classes, importing a class
when a spec first needs it ("module:Class" strings, as fsspec does), so
``import remote_executors`` pays for no executor it does not use.

Other packages add schemes with an entry point in the group
``remote_executors.executors`` (name: the scheme, value: ``"module:Class"``),
or at run time with :func:`register_executor`. Built-in schemes cannot be
taken over by an entry point; :func:`register_executor` may replace one on
purpose (``replace=True``).

A bare word other than ``local`` (``box``) is an SSH alias, as the command
line and records written before specs existed spell it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
import unicodedata
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import attrs

from ..errors import ExecutorUnavailable, InvalidInput

if TYPE_CHECKING:
    from .base import Executor

__all__ = [
    "ENTRY_POINT_GROUP",
    "LOCAL_SPEC",
    "ParsedSpec",
    "check_spec",
    "executor_class",
    "executor_from_spec",
    "format_spec",
    "normalize_spec",
    "parse_spec",
    "register_executor",
    "registered_schemes",
    "short_name",
]

ENTRY_POINT_GROUP = "remote_executors.executors"
LOCAL_SPEC = "local"

log = logging.getLogger("remote_executors.executors")

_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]*")
# Characters left as they are in a spec's target and option values: readable
# paths and names; everything else is percent-encoded.
_SAFE = "/:@~+[]._-"


@attrs.frozen
class _Builtin:
    target: str
    #: The ``remote-executors[extra]`` that brings the class's dependencies.
    extra: str | None = None


_BUILTIN: dict[str, _Builtin] = {
    "local": _Builtin("remote_executors.executors.local:LocalExecutor"),
    "ssh": _Builtin("remote_executors.executors.ssh:SSHExecutor"),
    "docker": _Builtin("remote_executors.executors.docker:DockerExecutor", "docker"),
    "podman": _Builtin("remote_executors.executors.docker:DockerExecutor", "docker"),
    "k8s": _Builtin("remote_executors.executors.kubernetes:KubernetesExecutor", "kubernetes"),
}
_registered: dict[str, str | type[Any]] = {}


@attrs.frozen
class ParsedSpec:
    """A spec taken apart: ``scheme://target?key=value&...``.

    ``target`` is as written (still percent-encoded: its structure, e.g.
    ``ns/pod/container``, is the executor's to split); ``options`` are decoded
    (key, value) pairs in order, repeated keys kept.
    """

    scheme: str
    target: str
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str) -> str | None:
        """The last value given for ``key``, or None."""
        found = None
        for name, value in self.options:
            if name == key:
                found = value
        return found


def _bad(spec: object, why: str) -> InvalidInput:
    return InvalidInput(
        f"Refusing executor {spec!r}: {why}. Write local, an SSH alias, or "
        "SCHEME://TARGET (ssh://box, docker://container, k8s://namespace/pod).",
        host=spec if isinstance(spec, str) and spec else repr(spec),
    )


def check_spec(spec: object) -> str:
    """``spec`` if it is well formed (syntax only: nothing is imported or contacted)."""
    if not isinstance(spec, str) or not spec:
        raise _bad(spec, "expected a non-empty string")
    if spec.startswith("-"):
        raise _bad(spec, "it starts with '-', which a command would read as an option")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in spec):
        raise _bad(spec, "it contains control characters")
    if spec == LOCAL_SPEC:
        return spec
    scheme, sep, rest = spec.partition("://")
    if not sep:
        # A bare SSH alias, as records kept it before specs: anything but a path.
        # (SSHExecutor checks it strictly when it is used.)
        if "/" in spec:
            raise _bad(spec, "a bare name is an SSH alias, which contains no '/'")
        return spec
    if any(ch.isspace() for ch in spec):
        raise _bad(spec, "it contains whitespace (percent-encode it: %20)")
    if not _SCHEME_RE.fullmatch(scheme):
        raise _bad(spec, f"{scheme!r} is not a scheme (lowercase letters, digits, + . -)")
    if not rest or rest.startswith("?"):
        raise _bad(spec, f"nothing follows {scheme}://")
    return spec


def normalize_spec(spec: str) -> str:
    """The canonical spelling: a bare alias ``box`` becomes ``ssh://box``."""
    check_spec(spec)
    if spec == LOCAL_SPEC or "://" in spec:
        return spec
    return "ssh://" + quote(spec, safe=_SAFE)


def parse_spec(spec: str) -> ParsedSpec:
    """Take a (checked, normalized) spec apart; ``local`` is ``ParsedSpec("local", "")``."""
    spec = normalize_spec(spec)
    if spec == LOCAL_SPEC:
        return ParsedSpec(LOCAL_SPEC, "")
    scheme, _, rest = spec.partition("://")
    target, _, query = rest.partition("?")
    options = []
    for pair in query.split("&") if query else ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _bad(spec, f"option {pair!r} is not KEY=VALUE")
        # unquote, not unquote_plus: '+' is itself (paths hold it), spaces are %20.
        options.append((unquote(key), unquote(value)))
    return ParsedSpec(scheme, target, tuple(options))


def format_spec(scheme: str, target: str, options: list[tuple[str, str]] | None = None) -> str:
    """``scheme://target?k=v&...``; ``target`` and each option are percent-encoded
    except for characters readable in paths (``/ : @ ~ + [ ] . _ -``)."""
    spec = f"{scheme}://{target}"
    if options:
        spec += "?" + "&".join(
            f"{quote(key, safe=_SAFE)}={quote(value, safe=_SAFE)}" for key, value in options
        )
    return spec


def short_name(spec: str) -> str:
    """How people name the executor: ``local``, an ssh alias (``ssh://box?...`` is
    ``box``), else the spec without its options (``k8s://ns/pod``)."""
    parsed = parse_spec(spec)
    if parsed.scheme == LOCAL_SPEC:
        return LOCAL_SPEC
    if parsed.scheme == "ssh":
        return unquote(parsed.target)
    return f"{parsed.scheme}://{parsed.target}"


def scheme_of(spec: str) -> str:
    return parse_spec(spec).scheme


def register_executor(scheme: str, target: str | type[Any], *, replace: bool = False) -> None:
    """Map ``scheme`` to an executor class, or to ``"module:Class"`` imported when used.

    The class must offer ``from_spec(spec)`` and a ``spec`` property. Raises
    ``ValueError`` for a scheme already taken unless ``replace``.
    """
    if not isinstance(scheme, str) or not _SCHEME_RE.fullmatch(scheme) or scheme == LOCAL_SPEC:
        raise ValueError(
            f"Cannot register scheme {scheme!r}: expected lowercase letters, digits, + . -"
        )
    if not replace and (scheme in _registered or scheme in _BUILTIN):
        raise ValueError(
            f"Scheme {scheme!r} is already registered; pass replace=True to replace it"
        )
    _registered[scheme] = target


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if point.name in _BUILTIN:
            log.warning(
                "Ignoring entry point %s = %s: %r is a built-in executor scheme",
                point.name,
                point.value,
                point.name,
            )
            continue
        found.setdefault(point.name, point)
    return found


def registered_schemes() -> list[str]:
    """Every scheme a spec may use: built-in, registered and from entry points."""
    return sorted({*_BUILTIN, *_registered, *_entry_points()})


def executor_class(scheme: str, *, spec: str | None = None) -> type[Any]:
    """The class behind ``scheme``, imported now; :class:`ExecutorUnavailable` if it
    cannot be (unknown scheme, module or dependency missing), saying what to install."""
    shown = spec if spec is not None else f"{scheme}://"
    target = _registered.get(scheme)
    builtin = _BUILTIN.get(scheme) if target is None else None
    point = None
    if target is None and builtin is not None:
        target = builtin.target
    if target is None:
        point = _entry_points().get(scheme)
        if point is None:
            raise ExecutorUnavailable(
                f"No executor handles {shown}: the scheme {scheme!r} is not known. Known "
                f"schemes: {', '.join(registered_schemes())}. A package that adds {scheme}:// "
                f"registers it under the entry point group {ENTRY_POINT_GROUP!r}; install it.",
                host=shown,
                scheme=scheme,
            )
        target = point.value
    if not isinstance(target, str):
        return target
    return _import(target, scheme, shown, builtin, point)


def _import(
    target: str,
    scheme: str,
    shown: str,
    builtin: _Builtin | None,
    point: importlib.metadata.EntryPoint | None,
) -> type[Any]:
    module_name, _, attribute = target.partition(":")
    provider = _provider(builtin, point)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module_name
        if missing == module_name or module_name.startswith(missing + "."):
            if builtin is not None:
                what = (
                    f"this remote-executors has no {scheme} executor ({module_name} is "
                    "missing): upgrade remote-executors (pip install -U remote-executors)"
                )
            else:
                what = f"its module {module_name} is missing: reinstall {provider}"
        elif builtin is not None and builtin.extra is not None:
            what = (
                f"it needs the Python package {missing}: pip install "
                f"'remote-executors[{builtin.extra}]'"
            )
        else:
            what = f"it needs the Python package {missing}: install it (or reinstall {provider})"
        raise ExecutorUnavailable(
            f"Cannot open {shown}: {what}.", host=shown, scheme=scheme, detail=str(exc)
        ) from exc
    found = getattr(module, attribute, None) if attribute else None
    if not isinstance(found, type) or not callable(getattr(found, "from_spec", None)):
        raise ExecutorUnavailable(
            f"Cannot open {shown}: {target} is not an executor class with from_spec(); "
            f"reinstall or upgrade {provider}.",
            host=shown,
            scheme=scheme,
        )
    return found


def _provider(builtin: _Builtin | None, point: importlib.metadata.EntryPoint | None) -> str:
    if builtin is not None:
        return "remote-executors"
    dist = getattr(point, "dist", None)
    name = getattr(dist, "name", None)
    return f"the package {name}" if name else "the package that registered it"


def executor_from_spec(spec: str) -> Executor:
    """Open the executor ``spec`` names (``local``, ``ssh://box``, ``docker://c``, ...).

    Nothing is contacted yet: executors connect on first use. Raises
    :class:`~remote_executors.InvalidInput` for a malformed spec and
    :class:`~remote_executors.ExecutorUnavailable` when no installed class
    handles its scheme.
    """
    normal = normalize_spec(spec)
    scheme = scheme_of(normal)
    cls = executor_class(scheme, spec=normal)
    executor: Executor = cls.from_spec(normal)
    return executor
