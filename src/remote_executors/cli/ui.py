"""``remote-executors ui``: the local web UI, with a fresh token per run."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import click

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_WILDCARD = ("0.0.0.0", "::")  # noqa: S104 (recognised, not chosen: --host decides)


def _own_names() -> set[str]:
    """This machine's names and addresses (for the Host check when listening on all)."""
    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        with contextlib.suppress(OSError):
            names |= {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    return {n.lower() for n in names if n}


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port (default: a free one)."
)
@click.option("--no-open", is_flag=True, help="Do not open a browser.")
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="A directory whose projects the UI may open (repeatable; default: your home).",
)
@click.option(
    "--permission-timeout",
    type=click.FloatRange(1, 86400),
    default=600,
    show_default=True,
    help="Seconds a permission prompt waits for an answer in the page; then it is denied.",
)
def ui(
    host: str, port: int, no_open: bool, roots: tuple[str, ...], permission_timeout: float
) -> None:
    """Serve the web UI on this machine and print its URL (with a fresh token).

    Loopback only unless --host says otherwise: anyone who can reach the port
    and learns the token can run sessions as you.
    """
    try:
        import uvicorn

        from ..web import WebContext, create_app, new_token
        from ..web._runs import Runs
    except ImportError as exc:
        raise click.ClickException(
            f"The web UI needs the 'web' extra ({exc.name} is missing): "
            "pip install 'remote-executors[web]'"
        ) from None
    if host.strip("[]") not in _LOOPBACK:
        click.secho(
            f"warning: listening on {host}: other machines can reach this UI; the token is all "
            "that protects your sessions. Prefer an ssh tunnel to 127.0.0.1.",
            fg="yellow",
            err=True,
        )
    port = port or _free_port(host.strip("[]"))
    token = new_token()
    context = WebContext(
        roots=[Path(os.path.abspath(r)) for r in roots] or [Path.home()],
        runs=Runs(permission_seconds=permission_timeout),
    )
    names = {*_LOOPBACK, host.strip("[]")}
    shown = host.strip("[]")
    if shown in _WILDCARD:
        # Every address of this machine: browsers elsewhere name it by one of them.
        shown = socket.getfqdn()
        names |= _own_names()
    app = create_app(token=token, context=context, hosts=names)
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/?token={token}"
    click.echo(f"remote-executors UI: {url}", err=False)
    click.echo("(Ctrl-C to stop)", err=True)
    with tempfile.TemporaryDirectory(prefix="rx-ui-") as private:
        if not no_open:
            _open_browser(url, Path(private))
        config = uvicorn.Config(
            app,
            host=host.strip("[]"),
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
        )
        _serve(config, context)


def _serve(config: Any, context: Any) -> None:
    """Run uvicorn; on Ctrl-C, tell the event streams to end first (uvicorn waits for
    open responses before the app's own shutdown, and those never end by themselves)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            context.stop()
            await super().shutdown(sockets)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is meant to stop
        Server(config).run()


def _open_browser(url: str, private: Path) -> None:
    """Open ``url`` without putting its token on a command line (``ps`` shows those to
    every user): the browser gets a file of ours that redirects to it."""
    import html
    import webbrowser

    page = private / "open.html"
    fd = os.open(page, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        target = html.escape(url)
        handle.write(
            f'<!doctype html><meta http-equiv="refresh" content="0;url={target}">'
            f'<a href="{target}">Open the remote-executors UI</a>\n'
        )
    webbrowser.open(page.as_uri())
