"""More faults for sessions that outlive the link: a cut exactly as the result is written,
and random cuts over multi-turn sessions (a hypothesis property, few examples).

Real sshd behind the link proxy, real CLI, the scripted model. Each test checks what the
caller saw (every message once, in order) and that the transcript is the same on both
sides afterwards.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, ResultMessage
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import remote_executors as rx
from _sessions import texts, transcripts
from remote_executors.testing.link import LinkProxy
from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@pytest.fixture(autouse=True)
def local_claude(private_local_claude: Path) -> Path:
    return private_local_claude


def executor_for(link: LinkProxy, cfg: SSHClientConfig) -> rx.SSHExecutor:
    proxied = link.client_config(cfg)
    return rx.SSHExecutor(
        proxied.alias,
        ssh_config=proxied.path,
        keepalive_interval=1,
        keepalive_count=2,
        reattach_within=60,
    )


def assert_once_each(messages: list[Any]) -> None:
    uuids = [m.uuid for m in messages if getattr(m, "uuid", None)]
    assert len(uuids) == len(set(uuids)), uuids


class CutAtResult(threading.Thread):
    """Cuts the link the moment the supervisor's spool holds a result line (polls every
    0.2 ms), and restores it ``seconds`` later."""

    def __init__(self, link: LinkProxy, spool: Path, seconds: float) -> None:
        super().__init__(daemon=True)
        self.link, self.spool, self.seconds = link, spool, seconds
        self.cut_at: float | None = None
        self.stop = threading.Event()
        self.last = b""

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.spool.read_bytes()
            except OSError:
                data = b""
            self.last = data[-3000:] or self.last
            if b'"type":"result"' in data:
                self.link.cut()
                self.cut_at = time.monotonic()
                time.sleep(self.seconds)
                self.link.restore()
                return
            time.sleep(0.0002)


@asyncio_only
async def test_a_cut_as_the_result_is_written_delivers_it_once(
    link: LinkProxy,
    rx_ssh_config: SSHClientConfig,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    prompt = f"almost done {secrets.token_hex(4)}"
    rx_model.script(
        tool_use("Bash", {"command": "sleep 1; echo ok", "description": "w"}),
        text("finished at last"),
        when=prompt,
    )
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    messages: list[Any] = []
    cutter: CutAtResult | None = None
    async with executor_for(link, rx_ssh_config) as executor:
        with anyio.fail_after(90):
            async for m in rx.query(prompt=prompt, options=options, executor=executor):
                messages.append(m)
                if cutter is None and isinstance(m, AssistantMessage):
                    # The job's spool, found the way a new process would find it.
                    async with executor_for(link, rx_ssh_config) as other:
                        [job] = [
                            s
                            for s in await rx.list_running_sessions(other)
                            if s.session_id == m.session_id
                        ]
                    cutter = CutAtResult(link, Path(job.job_dir) / "out", 1.5)
                    cutter.start()
        assert cutter is not None
        cutter.stop.set()
        cutter.join()
    assert cutter.cut_at is not None, cutter.last
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert len(results) == 1 and results[0].subtype == "success", messages
    assert texts(messages) == ["finished at last"]
    assert_once_each(messages)
    there, here = transcripts(rx_sshd, rx_account, rx_project, local_claude, results[0].session_id)
    assert here == there and b"finished at last" in here


# ---- random cuts over multi-turn sessions -----------------------------------------------

#: One turn: (seconds into the turn when the link is cut, or None for no cut; how long).
#: A turn takes about 1.5 s (a Bash step of a second): a late cut lands after its result,
#: while the next prompt is being sent.
turns = st.lists(
    st.tuples(
        st.sampled_from([None, 0.0, 0.3, 0.8, 1.5]),
        st.sampled_from([0.3, 1.0, 3.0]),
    ),
    min_size=2,
    max_size=3,
)


@asyncio_only
@settings(
    max_examples=3,
    deadline=None,
    # Shrinking would rerun sessions for minutes; a failing schedule is readable as is.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(schedule=turns)
# Always tried too: a cut in every turn, one of them landing between turns.
@example(schedule=[(0.0, 0.3), (0.8, 3.0), (1.5, 1.0)])
async def test_random_cuts_over_multi_turn_sessions_lose_and_repeat_nothing(
    link: LinkProxy,
    rx_ssh_config: SSHClientConfig,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_model: ScriptedModel,
    local_claude: Path,
    schedule: list[tuple[float | None, float]],
) -> None:
    tag = secrets.token_hex(4)
    first = f"session {tag} turn 0"
    # Each turn: a Bash step (a second), then its own closing text.
    rx_model.script(
        *(
            step
            for n in range(len(schedule))
            for step in (
                tool_use("Bash", {"command": f"sleep 1; echo t{n}", "description": "w"}),
                text(f"turn {n} of {tag} done"),
            )
        ),
        when=first,
    )
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    seen: list[list[Any]] = []
    async with executor_for(link, rx_ssh_config) as executor:
        client = rx.ClaudeSDKClient(options=options, executor=executor)
        with anyio.fail_after(60 + 25 * len(schedule)):
            await client.connect()
            try:
                for n, (cut_after, seconds) in enumerate(schedule):
                    messages: list[Any] = []
                    async with anyio.create_task_group() as tg:
                        if cut_after is not None:

                            async def cut(after: float = cut_after, down: float = seconds) -> None:
                                await anyio.sleep(after)
                                link.cut()
                                await anyio.sleep(down)
                                link.restore()

                            tg.start_soon(cut)
                        await client.query(first if n == 0 else f"turn {n}")
                        async for m in client.receive_response():
                            messages.append(m)
                    seen.append(messages)
            finally:
                link.restore()
                await client.disconnect()
    everything = [m for turn in seen for m in turn]
    assert_once_each(everything)
    for n, messages in enumerate(seen):
        results = [m for m in messages if isinstance(m, ResultMessage)]
        assert len(results) == 1 and results[0].subtype == "success", (n, messages)
        assert texts(messages) == [f"turn {n} of {tag} done"], (n, schedule)
        states = [s.state for m in messages if (s := rx.LinkStatus.from_message(m)) is not None]
        assert states in ([], ["detached", "reattached"], ["detached", "reattached"] * 2), states
    sid = seen[0][-1].session_id
    there, here = transcripts(rx_sshd, rx_account, rx_project, local_claude, sid)
    assert here == there
    for n in range(len(schedule)):
        assert f"turn {n} of {tag} done".encode() in here
