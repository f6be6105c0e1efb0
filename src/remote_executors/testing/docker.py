"""A real container test bed: a Debian image built here, containers to run sessions in.

No image registry is needed: the image is a ``debootstrap --variant=minbase``
of this machine's own Debian mirror, imported with ``docker import`` and
tagged with a hash of its recipe, so it is built once per machine (about a
minute and a half, 210 MB) and found again by later runs. Containers get a
user with its own home (``/home/agent``, unlike the local home), the Claude
Code CLI from the installed ``claude-agent-sdk`` wheel bind-mounted into
``~/.local/bin`` (off the PATH of a plain ``exec``, as the native installer
leaves it), ``~/.claude/settings.json`` pointing it at a stand-in model, and
``--network host`` so that model is reachable on 127.0.0.1.

Everything goes through the engine's CLI (``docker`` or ``podman``); nothing
here needs the daemon's API from Python. Needs root (debootstrap) for the
first build only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs

from .model import DEFAULT_API_KEY
from .sshd import bundled_claude_binary

__all__ = [
    "ContainerBed",
    "ContainerBedError",
    "TestContainer",
    "debian_mirror",
    "engine_available",
]

#: Debian packages beyond minbase: ps for the watchdog's process-tree walk.
PACKAGES = ("procps",)
#: Bump when the recipe changes in a way the hash below does not see.
_RECIPE = 1
_C_ENV = {**os.environ, "LC_ALL": "C", "LANG": "C"}
_LABEL = "io.remote-executors.test-bed"


class ContainerBedError(RuntimeError):
    """The container test bed could not be set up (says what is missing)."""


def engine_available(engine: str = "docker") -> str | None:
    """None when ``engine`` answers here; otherwise why not (for a skip reason)."""
    binary = shutil.which(engine)
    if binary is None:
        return f"{engine} is not installed (apt-get install docker.io)"
    try:
        done = subprocess.run(
            [binary, "version"],  # asks the engine (docker's daemon, podman's service) too
            capture_output=True,
            text=True,
            timeout=30,
            env=_C_ENV,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"`{engine} info` did not answer within 30 s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the {engine} engine does not answer ({last}); start it (.ci/run shows how)"
    return None


def debian_mirror() -> tuple[str, str]:
    """(mirror URL, suite) from this machine's apt sources; Debian's own otherwise."""
    suite = "bookworm"
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME=") and line.split("=", 1)[1].strip('"'):
                suite = line.split("=", 1)[1].strip('"')
    sources = [Path("/etc/apt/sources.list")]
    with contextlib.suppress(OSError):
        sources += sorted(Path("/etc/apt/sources.list.d").iterdir())
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "URIs:" and "security" not in words[1]:
                return words[1], suite
            if len(words) >= 3 and words[0] == "deb" and "security" not in line:
                url = next((w for w in words[1:] if "://" in w), None)
                if url:
                    return url, suite
    return "http://deb.debian.org/debian", suite


@attrs.frozen
class TestContainer:
    """One running container of the bed, with a user to run sessions as.

    ``home`` is the user's home inside; ``root`` is the container's filesystem
    as this machine sees it (``/proc/<pid>/root``, root only), so tests can
    look at files without going through the engine.
    """

    __test__ = False  # not a pytest class

    engine: str
    name: str
    user: str
    uid: int
    gid: int
    home: str
    pid: int

    @property
    def root(self) -> Path:
        return Path(f"/proc/{self.pid}/root")

    def path(self, inside: str) -> Path:
        """``inside`` (an absolute path in the container) as seen from here."""
        return self.root / inside.lstrip("/")

    @property
    def claude_config_dir(self) -> str:
        return f"{self.home}/.claude"

    def exec(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        input: bytes | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``argv`` in the container as ``user`` (default: the bed's user)."""
        done = subprocess.run(
            [self.engine, "exec", "-i", "-u", user or self.user, "--", self.name, *argv],
            input=input or b"",
            capture_output=True,
            timeout=timeout,
            env=_C_ENV,
            check=False,
        )
        if check and done.returncode != 0:
            raise ContainerBedError(
                f"{' '.join(argv)} in {self.name} failed ({done.returncode}): "
                + done.stderr.decode("utf-8", "replace").strip()
            )
        return done

    def processes(self) -> list[str]:
        """Command lines of the container's live processes (read from this machine's
        /proc: processes in the container's pid namespace, zombies left out)."""
        try:
            namespace = os.readlink(f"/proc/{self.pid}/ns/pid")
        except OSError:
            return []
        found: list[str] = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/pid") != namespace:
                    continue
                with open(f"/proc/{entry}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[-1].split()[0]
                if state == b"Z":
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().rstrip(b"\0").replace(b"\0", b" ")
                found.append(args.decode("utf-8", "replace"))
        return found

    def kill_user_processes(self) -> None:
        """SIGKILL whatever the bed's user left running in the container."""
        self.exec(["pkill", "-KILL", "-U", str(self.uid)], user="0", check=False)


class ContainerBed:
    """Builds the image once and makes containers; ``close()`` removes them.

    ``engine`` is ``"docker"`` or ``"podman"``. The image is tagged
    ``remote-executors-test:<hash of the recipe>``; builds by concurrent
    test workers wait for each other on a lock file.
    """

    def __init__(self, engine: str = "docker", *, cache_dir: Path | None = None) -> None:
        self.engine = engine
        why = engine_available(engine)
        if why is not None:
            raise ContainerBedError(why)
        self._cache = cache_dir or Path(tempfile.gettempdir()) / "remote-executors-test-images"
        self._containers: list[str] = []
        self.image = self._ensure_image()
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        """Containers of beds whose process is gone (a killed test run) go now."""
        listed = subprocess.run(
            [
                self.engine,
                "ps",
                "-a",
                "--filter",
                f"label={_LABEL}",
                "--format",
                f'{{{{.Names}}}} {{{{.Label "{_LABEL}"}}}}',
            ],
            capture_output=True,
            text=True,
            env=_C_ENV,
            check=False,
        )
        for line in listed.stdout.splitlines():
            name, _, owner = line.partition(" ")
            if owner.isdigit() and not _alive(int(owner)):
                self.remove(name)

    # -- the image ---------------------------------------------------------------

    def _recipe(self) -> dict[str, object]:
        mirror, suite = debian_mirror()
        return {"recipe": _RECIPE, "suite": suite, "packages": PACKAGES, "mirror": mirror}

    def _tag(self) -> str:
        digest = hashlib.sha256(json.dumps(self._recipe(), sort_keys=True).encode()).hexdigest()
        return f"remote-executors-test:{digest[:16]}"

    def _has_image(self, tag: str) -> bool:
        done = subprocess.run(
            [self.engine, "image", "inspect", tag], capture_output=True, env=_C_ENV, check=False
        )
        return done.returncode == 0

    def _ensure_image(self) -> str:
        tag = self._tag()
        if self._has_image(tag):
            return tag
        self._cache.mkdir(parents=True, exist_ok=True)
        with open(self._cache / f"{self.engine}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it
            if not self._has_image(tag) and not self._copy_from_docker(tag):
                self._build(tag)
        return tag

    def _copy_from_docker(self, tag: str) -> bool:
        """For podman: load the same image from Docker when it has it (seconds,
        instead of another debootstrap)."""
        if self.engine == "docker" or engine_available("docker") is not None:
            return False
        # One debootstrap per machine: Docker builds it (or has it) under its own lock.
        if ContainerBed("docker", cache_dir=self._cache).image != tag:
            return False
        saved = subprocess.Popen(
            ["docker", "save", tag], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_C_ENV
        )
        assert saved.stdout is not None
        loaded = subprocess.run(
            [self.engine, "load"], stdin=saved.stdout, capture_output=True, env=_C_ENV, check=False
        )
        saved.stdout.close()
        return saved.wait() == 0 and loaded.returncode == 0 and self._has_image(tag)

    def _build(self, tag: str) -> None:
        debootstrap = shutil.which("debootstrap")
        if debootstrap is None:
            raise ContainerBedError(
                "debootstrap is not installed; it builds the test image (apt-get install "
                "debootstrap)"
            )
        if os.geteuid() != 0:
            raise ContainerBedError(f"building the test image {tag} needs root (debootstrap)")
        recipe = self._recipe()
        with tempfile.TemporaryDirectory(dir=self._cache) as scratch:
            rootfs = Path(scratch) / "rootfs"
            started = time.monotonic()
            done = subprocess.run(
                [
                    debootstrap,
                    "--variant=minbase",
                    "--include=" + ",".join(PACKAGES),
                    str(recipe["suite"]),
                    str(rootfs),
                    str(recipe["mirror"]),
                ],
                capture_output=True,
                text=True,
                env=_C_ENV,
                check=False,
            )
            if done.returncode != 0:
                raise ContainerBedError(
                    f"debootstrap of {recipe['suite']} from {recipe['mirror']} failed: "
                    + "\n".join(done.stdout.strip().splitlines()[-10:])
                )
            # apt's lists and caches are of no use in a test container.
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                shutil.rmtree(rootfs / junk, ignore_errors=True)
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            imported = subprocess.run(
                [self.engine, "import", "-", tag],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                env=_C_ENV,
                check=False,
            )
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
            if imported.returncode != 0 or tar.returncode != 0:
                raise ContainerBedError(f"{self.engine} import failed: {imported.stderr.strip()}")
            self.build_seconds = time.monotonic() - started

    build_seconds: float = 0.0
    """How long this bed spent building the image (0 when it was cached)."""

    # -- containers ----------------------------------------------------------------

    def container(
        self,
        *,
        model_url: str | None = None,
        user: str = "agent",
        claude: bool = True,
        settings: Mapping[str, object] | None = None,
        network_host: bool = True,
    ) -> TestContainer:
        """A new running container with ``user`` (home ``/home/<user>``) and, with
        ``claude``, the bundled CLI in ``~/.local/bin`` and settings for ``model_url``."""
        name = f"rx-test-{secrets.token_hex(5)}"
        home = f"/home/{user}"
        argv = [self.engine, "run", "-d", "--init", "--name", name]
        argv += ["--label", f"{_LABEL}={os.getpid()}"]
        if network_host:
            argv += ["--network", "host"]
        if claude:
            cli = bundled_claude_binary().resolve()
            argv += ["-v", f"{cli}:{home}/.local/bin/claude:ro"]
        argv += [self.image, "sleep", "infinity"]
        self._run(argv)
        self._containers.append(name)
        self._run(
            [
                self.engine,
                "exec",
                "-u",
                "0",
                "--",
                name,
                "/bin/sh",
                "-c",
                'useradd -M -d "$2" -s /bin/bash "$1" && mkdir -p "$2/.claude" "$2/.local/bin" '
                '&& chown "$1:$1" "$2" "$2/.claude" "$2/.local" "$2/.local/bin" '
                '&& chmod 700 "$2" "$2/.claude"',
                "sh",
                user,
                home,
            ]
        )
        ids = self._run(
            [self.engine, "exec", "--", name, "/bin/sh", "-c", 'id -u "$1"; id -g "$1"', "sh", user]
        ).split()
        pid = int(
            self._run([self.engine, "container", "inspect", "--format", "{{.State.Pid}}", name])
        )
        box = TestContainer(self.engine, name, user, int(ids[0]), int(ids[1]), home, pid)
        if claude:
            env: dict[str, str] = {
                "ANTHROPIC_API_KEY": DEFAULT_API_KEY,  # what ScriptedModel accepts
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1",
            }
            if model_url:
                env["ANTHROPIC_BASE_URL"] = model_url
            body: dict[str, object] = {**(settings or {}), "env": env}
            box.exec(
                ["/bin/sh", "-c", 'umask 077 && cat > "$1"', "sh", f"{home}/.claude/settings.json"],
                input=json.dumps(body, indent=2).encode(),
            )
        return box

    def remove(self, name: str) -> None:
        subprocess.run(
            [self.engine, "rm", "-f", "--", name],
            capture_output=True,
            env=_C_ENV,
            check=False,
            timeout=60,
        )
        with contextlib.suppress(ValueError):
            self._containers.remove(name)

    def stop(self, name: str, *, seconds: int = 1) -> None:
        self._run([self.engine, "stop", "-t", str(seconds), "--", name])

    def _run(self, argv: Sequence[str]) -> str:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, env=_C_ENV, check=False, timeout=120
        )
        if done.returncode != 0:
            raise ContainerBedError(f"{' '.join(argv[:4])} ... failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def close(self) -> None:
        for name in list(self._containers):
            self.remove(name)

    def __enter__(self) -> ContainerBed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def container_bed(engine: str = "docker") -> Iterator[ContainerBed]:
    """``with container_bed() as bed:`` a :class:`ContainerBed`, closed afterwards."""
    with ContainerBed(engine) as bed:
        yield bed
