"""HOST on the command line: an ssh alias, ``local`` for this machine, or a spec.

``sessions`` lists sessions run here as ``[local]``, so ``--on local`` means
this machine. An ssh alias that is literally called ``local`` stays reachable
as ``ssh://local`` (any alias may be written that way). Any other executor is
named by its spec (``docker://c``, ``k8s://ns/pod``, ``ssh://box?ssh_config=…``),
checked for form here and opened by :func:`remote_executors.settings.executor_for`.
"""

from __future__ import annotations

import dataclasses

import click

__all__ = ["LOCAL", "SSH_SCHEME", "HostType", "Target"]

LOCAL = "local"
SSH_SCHEME = "ssh://"


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a command runs: an ssh alias or a spec, or this machine (``alias is None``)."""

    alias: str | None

    @property
    def name(self) -> str:
        return LOCAL if self.alias is None else self.alias


class HostType(click.ParamType):  # type: ignore[type-arg, unused-ignore]  # generic in click 8.5
    """Converts to the alias (a :class:`Target` where this machine is allowed too)."""

    name = "host"

    def __init__(self, *, local_ok: bool, not_local: str = "") -> None:
        self.local_ok = local_ok
        self.not_local = not_local

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str | Target:
        if isinstance(value, Target):
            return value
        text = str(value)
        if text == LOCAL:
            if self.local_ok:
                return Target(None)
            self.fail(
                f"{LOCAL} means this machine; {self.not_local} For an ssh alias named "
                f"{LOCAL}, write {SSH_SCHEME}{LOCAL}.",
                param,
                ctx,
            )
        if text.startswith(SSH_SCHEME) and "?" not in text:
            if text == SSH_SCHEME:
                self.fail(f"{SSH_SCHEME} needs an alias after it (e.g. {SSH_SCHEME}box).")
            if text != SSH_SCHEME + LOCAL:  # stays a spec: a bare "local" is this machine
                text = text[len(SSH_SCHEME) :]
        elif "://" in text:
            from ..errors import InvalidInput
            from ..executors.registry import normalize_spec

            try:
                text = normalize_spec(text)
            except InvalidInput as exc:
                self.fail(exc.message, param, ctx)
        return Target(text) if self.local_ok else text
