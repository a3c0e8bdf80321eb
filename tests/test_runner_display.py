"""How a run is shown (statebox.runner.display): plain lines when output is not a
terminal, a live rich table when it is — rendered here to a forced-terminal console, and
end to end through ``statebox run`` on a real pseudo-terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from statebox.runner.display import (
    LiveDisplay,
    PlainDisplay,
    format_duration,
    make_display,
)

from .test_cli import BIN, environment_without_context

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
TIME = r"\d\d:\d\d:\d\d"


def plain_text(data: str) -> str:
    return ANSI.sub("", data)


# --- plain lines -------------------------------------------------------------------------


def test_plain_lines_say_each_change() -> None:
    out = io.StringIO()
    display = PlainDisplay(out)
    display.run_started("feed-sync", "0197-run")
    display.step_changed("fetch", "running")
    display.step_changed("fetch", "retrying", attempt=2, message="exit status 1\nstderr: boom")
    display.step_changed("fetch", "succeeded", attempt=2, duration=2.14)
    display.step_changed("save cursor", "failed", duration=0.0123, message="conflict")
    display.step_changed("notify", "skipped")
    display.run_finished("feed-sync", "0197-run", "failed", 3.4)
    display.close()
    lines = out.getvalue().splitlines()
    assert all(re.match(TIME + " ", line) for line in lines)
    assert [line[9:] for line in lines] == [
        "run feed-sync 0197-run running",
        "step fetch running",
        "step fetch retrying attempt 2 exit status 1 stderr: boom",
        "step fetch succeeded attempt 2 2.1s",
        'step "save cursor" failed 12ms conflict',
        "step notify skipped",
        "run feed-sync 0197-run failed 3.4s",
    ]


def test_a_long_message_is_one_cut_line() -> None:
    out = io.StringIO()
    PlainDisplay(out).step_changed("s", "failed", message="word " * 200)
    [line] = out.getvalue().splitlines()
    assert line.endswith("…") and len(line) < 340


def test_plain_lines_from_many_threads_never_interleave() -> None:
    out = io.StringIO()
    display = PlainDisplay(out)

    def steps(worker: int) -> None:
        for i in range(100):
            display.step_changed(f"w{worker}-{i}", "succeeded", duration=0.5, message="m" * 50)

    threads = [threading.Thread(target=steps, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 800
    pattern = re.compile(TIME + r" step w\d-\d+ succeeded 500ms m{50}\Z")
    assert all(pattern.match(line) for line in lines)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0ms"),
        (0.4, "400ms"),
        (1.25, "1.2s"),
        (59.94, "59.9s"),
        (123, "2m03s"),
        (3720, "1h02m"),
    ],
)
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- choosing ----------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_live_view_anything_else_plain_lines() -> None:
    assert isinstance(make_display(io.StringIO()), PlainDisplay)
    live = make_display(FakeTerminal())
    assert isinstance(live, LiveDisplay)
    live.close()


def test_rich_is_imported_only_for_a_terminal() -> None:
    code = (
        "import io, sys\n"
        "from statebox.runner.display import make_display\n"
        "make_display(io.StringIO()).close()\n"
        "assert 'rich' not in sys.modules, 'rich was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- the live view -----------------------------------------------------------------------


def live_display(width: int = 120) -> tuple[LiveDisplay, io.StringIO]:
    out = io.StringIO()
    return LiveDisplay(console=Console(force_terminal=True, file=out, width=width)), out


def test_the_live_view_shows_each_steps_status_attempt_and_duration() -> None:
    display, out = live_display()
    display.run_started("feed-sync", "0197-run")
    display.step_changed("fetch", "running")
    display.step_changed("save cursor", "running")
    time.sleep(0.3)  # the refresh thread draws the running steps, spinner and clock
    drawn = plain_text(out.getvalue())
    assert "run feed-sync  0197-run" in drawn
    assert re.search(r"fetch\s+\S running", drawn)
    display.step_changed("fetch", "retrying", attempt=2, message="exit status 1")
    time.sleep(0.2)
    assert re.search(r"fetch\s+\S retrying\s+2\s+\d+ms\s+exit status 1", plain_text(out.getvalue()))
    display.step_changed("fetch", "succeeded", attempt=2, duration=2.14)
    display.step_changed("save cursor", "failed", duration=0.5, message="conflict: version 3")
    display.step_changed("notify", "aborted")
    display.run_finished("feed-sync", "0197-run", "failed", 3.4)
    display.close()
    final = plain_text(out.getvalue()).split("run feed-sync  0197-run")[-1]
    rows = [" ".join(line.split()) for line in final.splitlines() if line.strip()]
    assert rows == [
        "STEP STATUS ATTEMPT DURATION MESSAGE",
        "fetch succeeded 2 2.1s",
        "save cursor failed 500ms conflict: version 3",
        "notify aborted",
        "run failed 3.4s",
    ]


def test_the_live_view_takes_changes_from_many_threads() -> None:
    display, out = live_display()
    display.run_started("wide", "r1")

    def steps(worker: int) -> None:
        for i in range(25):
            name = f"w{worker}-{i}"
            display.step_changed(name, "running")
            display.step_changed(name, "succeeded", duration=0.01)

    threads = [threading.Thread(target=steps, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    display.run_finished("wide", "r1", "succeeded", 1.0)
    display.close()
    display.close()  # closing twice is harmless
    final = plain_text(out.getvalue()).split("run wide  r1")[-1]
    assert len(re.findall(r"w\d-\d+\s+succeeded", final)) == 200
    assert "run succeeded 1.0s" in " ".join(final.split())


def test_a_second_run_gets_a_table_of_its_own() -> None:
    display, out = live_display()
    display.run_started("first", "r1")
    display.step_changed("a", "succeeded", duration=0.1)
    display.run_finished("first", "r1", "succeeded", 0.2)
    display.run_started("second", "r2")
    display.step_changed("b", "skipped")
    display.close()  # without run_finished: the table stays as it was
    second = plain_text(out.getvalue()).split("run second  r2")[-1]
    assert "b" in second and "skipped" in second and not re.search(r"\ba\b", second)


# --- statebox run on a terminal ----------------------------------------------------------


def read_all(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the other end closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


def test_statebox_run_on_a_terminal_shows_the_steps_live(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dag = tmp_path / "live.yaml"
    dag.write_text(
        "steps:\n"
        "  - id: slow\n"
        "    run: sleep 0.6; echo done\n"
        "  - id: after\n"
        "    name: after slow\n"
        "    run: 'true'\n"
        "    depends: slow\n"
    )
    env = environment_without_context(tmp_path_factory)
    env.update(STATEBOX_STORE=f"sqlite:///{tmp_path / 'state.db'}", TERM="xterm", COLUMNS="100")
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [str(BIN / "statebox"), "run", str(dag)],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=tmp_path,
    )
    os.close(secondary)
    try:
        output = read_all(primary, proc, timeout=60).decode("utf-8", "replace")
        assert proc.wait(timeout=30) == 0, output
    finally:
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
    drawn = plain_text(output)
    assert re.search(r"slow\s+\S running", drawn), drawn  # drawn while it ran
    final = drawn.split("run live")[-1]
    assert re.search(r"slow\s+succeeded\s+\d+ms", final), final
    assert re.search(r"after slow\s+succeeded", final), final
    assert "run succeeded" in final
