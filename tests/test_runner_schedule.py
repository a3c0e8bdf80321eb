"""``statebox schedule``: cron occurrences, max_active_runs, overlap policies, a clean
stop, and exactly one run per occurrence across schedulers sharing a store.

The unit tests drive :meth:`Scheduler.tick` with their own clock over a real SQLite
store, with a run function the test releases; the proof of issue #14 runs three
``statebox schedule`` processes on one store (SQLite, then PostgreSQL) with a DAG every
second and checks that every occurrence ran once and none twice. Its duration:
``STATEBOX_TEST_SCHEDULE_SECONDS`` (SQLite, default 20) and
``STATEBOX_TEST_SCHEDULE_PG_SECONDS`` (PostgreSQL, default 8).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from statebox import ManualClock, StateStore, open_store
from statebox.core.errors import ConflictError, InvalidValueError
from statebox.runner.model import DAG, Step
from statebox.runner.records import RunRecords
from statebox.runner.scheduler import (
    CLAIM_NAMESPACE,
    CLAIM_SCOPE,
    CronSchedule,
    Scheduler,
    claim_key,
    occurrence_lease,
    slot_lease,
)

from .pg import fresh_schema_url

#: A whole second; the schedulers in the unit tests start 0.2 s after it.
T0 = 1_767_225_600
EVERY_SECOND = "* * * * * *"


# -- helpers ----------------------------------------------------------------------------


class Clock:
    """The scheduler's clock (epoch seconds), moved by the test."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Runs:
    """A run function whose runs last until the test finishes them (or stop is set)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []  # (dag, run_id)
        self.stopped: list[str] = []
        self._gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def __call__(self, dag: DAG, run_id: str, stop: threading.Event) -> str:
        gate = threading.Event()
        with self._lock:
            self.started.append((dag.name, run_id))
            self._gates[run_id] = gate
        while not gate.wait(0.005):
            if stop.is_set():
                with self._lock:
                    self.stopped.append(run_id)
                return "aborted"
        return "succeeded"

    def finish(self, scheduler: Scheduler, index: int) -> None:
        dag, run_id = self.started[index]
        self._gates[run_id].set()
        _until(lambda: run_id not in scheduler.active_runs(dag))


def instant(dag: DAG, run_id: str, stop: threading.Event) -> str:
    return "succeeded"


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def dag(name: str = "tick", *schedule: str, **fields: Any) -> DAG:
    return DAG(
        name=name,
        path=None,
        steps=(Step(id="s", name="s", run=("true",)),),
        schedule=schedule or (EVERY_SECOND,),
        **fields,
    )


def claim(store: StateStore, name: str, epoch: int) -> dict[str, Any] | None:
    found = store.get(claim_key(name, epoch), scope=CLAIM_SCOPE, namespace=CLAIM_NAMESPACE)
    return found.value if found.found else None


def claims(store: StateStore, name: str) -> dict[int, dict[str, Any]]:
    listed = store.list(
        f"{name}/", scope=CLAIM_SCOPE, namespace=CLAIM_NAMESPACE, include_values=True
    )
    found: dict[int, dict[str, Any]] = {}
    for entry in listed.entries:
        value = entry.value
        found[int(value["epoch"])] = value
    return found


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as s:
        yield s


def scheduler(
    store: StateStore, dags: list[DAG], clock: Clock, run: Any = instant, **kwargs: Any
) -> Scheduler:
    kwargs.setdefault("log", lambda line: None)
    return Scheduler(store, dags, run=run, now=clock, new_run_id=new_run_id, **kwargs)


def new_run_id() -> str:
    return str(uuid.uuid4())


# -- cron --------------------------------------------------------------------------------


def test_cron_with_a_seconds_field_and_five_fields() -> None:
    assert CronSchedule(EVERY_SECOND).next_after(T0 + 0.2) == T0 + 1
    assert CronSchedule(EVERY_SECOND).next_after(T0) == T0 + 1  # strictly after
    assert CronSchedule("* * * * * */15").next_after(T0 + 1) == T0 + 15
    assert CronSchedule("*/5 * * * *").next_after(T0 + 1) == T0 + 300
    assert CronSchedule("CRON_TZ=UTC 0 9 * * *").next_after(T0) == T0 + 9 * 3600
    # 2026-01-01 09:00 in Tokyo is T0 itself: the next one is a day later.
    assert CronSchedule("TZ=Asia/Tokyo 0 9 * * *").next_after(T0) == T0 + 24 * 3600
    assert CronSchedule("CRON_TZ=UTC @hourly").prev_before(T0 + 1) == T0
    # Seconds first (Quartz, robfig/cron), read so when that is the only reading: 09:00:30
    # on Monday 2026-01-05 (T0 is a Thursday).
    monday = T0 + 4 * 24 * 3600 + 9 * 3600 + 30
    assert CronSchedule("CRON_TZ=UTC 30 0 9 * * MON").next_after(T0) == monday


@pytest.mark.parametrize("expression", ["bad", "* * *", "61 * * * *", "TZ=Nowhere/City * * * * *"])
def test_an_invalid_schedule_is_refused_naming_it(expression: str) -> None:
    with pytest.raises(InvalidValueError, match="schedule"):
        CronSchedule(expression, where="d.yaml:2:11")


def test_occurrences_start_after_the_scheduler_started_and_none_is_caught_up(
    store: StateStore,
) -> None:
    clock = Clock(T0 + 0.2)
    ran: list[str] = []

    def run(d: DAG, run_id: str, stop: threading.Event) -> str:
        ran.append(run_id)
        return "succeeded"

    s = scheduler(store, [dag(max_active_runs=5)], clock, run)
    assert s.next_occurrence("tick") == T0 + 1  # T0 itself, before the start: not run
    clock.t = T0 + 3.5
    s.tick()
    s.join()
    assert len(ran) == 3
    found = claims(store, "tick")
    assert sorted(found) == [T0 + 1, T0 + 2, T0 + 3]
    assert {c["status"] for c in found.values()} == {"succeeded"}
    assert sorted(c["run_id"] for c in found.values()) == sorted(ran)
    assert s.next_occurrence("tick") == T0 + 4
    # The leases are released once the runs ended: another holder takes them at once.
    store.acquire_lease(occurrence_lease("tick", T0 + 1), 5, holder="someone else")
    store.acquire_lease(slot_lease("tick", 0), 5, holder="someone else")


def test_a_list_of_schedules_merges_their_occurrences(store: StateStore) -> None:
    clock = Clock(T0 + 0.2)
    s = scheduler(store, [dag("two", "* * * * * */2", "* * * * * */3", max_active_runs=5)], clock)
    clock.t = T0 + 6.5
    s.tick()
    s.join()
    assert sorted(claims(store, "two")) == [T0 + 2, T0 + 3, T0 + 4, T0 + 6]


def test_an_occurrence_found_too_late_is_missed(store: StateStore) -> None:
    clock = Clock(T0 + 0.2)
    lines: list[str] = []
    s = scheduler(store, [dag(max_active_runs=5)], clock, max_lateness=2, log=lines.append)
    clock.t = T0 + 10.5  # the machine slept
    s.tick()
    s.join()
    assert sorted(claims(store, "tick")) == [T0 + 9, T0 + 10]
    assert lines[0] == (
        "tick: missed 2026-01-01T00:00:01Z to 2026-01-01T00:00:08Z: more than 2 s late"
    )


def test_dags_without_a_schedule_are_not_scheduled(store: StateStore) -> None:
    plain = DAG(name="plain", path=None, steps=(Step(id="s", name="s", run=("true",)),))
    s = scheduler(store, [plain, dag()], Clock(T0))
    assert list(s.dags) == ["tick"]


# -- max_active_runs and overlap_policy ------------------------------------------------------


def test_skip_skips_an_occurrence_while_max_active_runs_are_active(store: StateStore) -> None:
    clock = Clock(T0 + 0.2)
    runs = Runs()
    s = scheduler(store, [dag(max_active_runs=2)], clock, runs)
    for second in (1, 2, 3):
        clock.t = T0 + second + 0.1
        s.tick()
    assert len(runs.started) == 2
    found = claims(store, "tick")
    assert found[T0 + 3]["status"] == "skipped"
    assert "run_id" not in found[T0 + 3]
    runs.finish(s, 0)
    clock.t = T0 + 4.1
    s.tick()
    assert len(runs.started) == 3
    assert claims(store, "tick")[T0 + 4]["status"] == "running"
    runs.finish(s, 1)
    runs.finish(s, 2)
    statuses = {e: c["status"] for e, c in claims(store, "tick").items()}
    assert statuses == {
        T0 + 1: "succeeded",
        T0 + 2: "succeeded",
        T0 + 3: "skipped",
        T0 + 4: "succeeded",
    }


def test_the_default_is_one_active_run_and_skip(store: StateStore) -> None:
    clock = Clock(T0 + 0.2)
    runs = Runs()
    s = scheduler(store, [dag()], clock, runs)
    clock.t = T0 + 3.1
    s.tick()
    assert len(runs.started) == 1
    assert [c["status"] for _, c in sorted(claims(store, "tick").items())] == [
        "running",
        "skipped",
        "skipped",
    ]
    runs.finish(s, 0)


def test_all_queues_occurrences_and_runs_them_in_order(store: StateStore) -> None:
    clock = Clock(T0 + 0.2)
    runs = Runs()
    s = scheduler(store, [dag(overlap_policy="all")], clock, runs)
    for second in (1, 2, 3):
        clock.t = T0 + second + 0.1
        s.tick()
    assert len(runs.started) == 1
    assert s.waiting("tick") == [T0 + 2, T0 + 3]
    assert claims(store, "tick")[T0 + 2]["status"] == "queued"
    runs.finish(s, 0)
    s.tick()  # a run's end wakes the loop; here the test ticks
    assert len(runs.started) == 2
    assert s.waiting("tick") == [T0 + 3]
    assert claim(store, "tick", T0 + 2)["run_id"] == runs.started[1][1]  # type: ignore[index]
    runs.finish(s, 1)
    s.tick()
    runs.finish(s, 2)
    assert claim(store, "tick", T0 + 3)["run_id"] == runs.started[2][1]  # type: ignore[index]
    statuses = [c["status"] for _, c in sorted(claims(store, "tick").items())]
    assert statuses == ["succeeded"] * 3


def test_latest_keeps_only_the_latest_waiting_occurrence(store: StateStore) -> None:
    clock = Clock(T0 + 0.2)
    runs = Runs()
    s = scheduler(store, [dag(overlap_policy="latest")], clock, runs)
    for second in (1, 2, 3, 4):
        clock.t = T0 + second + 0.1
        s.tick()
    assert len(runs.started) == 1
    assert s.waiting("tick") == [T0 + 4]
    runs.finish(s, 0)
    s.tick()
    assert len(runs.started) == 2
    runs.finish(s, 1)
    found = claims(store, "tick")
    assert [found[T0 + i]["status"] for i in (1, 2, 3, 4)] == [
        "succeeded",
        "dropped",
        "dropped",
        "succeeded",
    ]
    assert found[T0 + 4]["run_id"] == runs.started[1][1]


def test_max_active_runs_holds_across_schedulers(store: StateStore) -> None:
    clock = Clock(T0 + 0.2)
    runs = Runs()
    a = scheduler(store, [dag()], clock, runs, holder="a")
    b = scheduler(store, [dag()], clock, runs, holder="b")
    clock.t = T0 + 1.1
    a.tick()
    clock.t = T0 + 2.1
    b.tick()  # T0+1 is a's (claimed); T0+2: the one slot is a's run's
    a.tick()
    assert len(runs.started) == 1
    assert claim(store, "tick", T0 + 2)["status"] == "skipped"  # type: ignore[index]
    runs.finish(a, 0)
    clock.t = T0 + 3.1
    b.tick()
    assert len(runs.started) == 2
    assert claim(store, "tick", T0 + 3)["holder"] == b.holder  # type: ignore[index]
    runs.finish(b, 1)


def test_all_keeps_the_order_across_schedulers(store: StateStore) -> None:
    clock = Clock(T0 + 0.2)
    runs = Runs()
    a = scheduler(store, [dag(overlap_policy="all")], clock, runs, holder="a")
    b = scheduler(store, [dag(overlap_policy="all")], clock, runs, holder="b")
    clock.t = T0 + 1.1
    a.tick()  # runs T0+1
    clock.t = T0 + 2.1
    a.tick()  # queues T0+2
    clock.t = T0 + 3.1
    b.tick()  # T0+2 is a's; queues T0+3
    assert a.waiting("tick") == [T0 + 2] and b.waiting("tick") == [T0 + 3]
    runs.finish(a, 0)
    b.tick()  # the slot is free, but T0+2 (a's) waits before T0+3
    assert len(runs.started) == 1
    a.tick()
    assert len(runs.started) == 2
    runs.finish(a, 1)
    b.tick()
    assert len(runs.started) == 3
    runs.finish(b, 2)
    found = claims(store, "tick")
    order = [found[T0 + i]["run_id"] for i in (1, 2, 3)]
    assert order == [run_id for _, run_id in runs.started]


# -- exactly once ----------------------------------------------------------------------------


def test_schedulers_sharing_a_store_run_each_occurrence_once(store: StateStore) -> None:
    clock = Clock(T0 + 0.2)
    ran: list[tuple[str, str]] = []
    lock = threading.Lock()

    def by(name: str) -> Callable[[DAG, str, threading.Event], str]:
        def run(d: DAG, run_id: str, stop: threading.Event) -> str:
            with lock:
                ran.append((name, run_id))
            return "succeeded"

        return run

    group = [scheduler(store, [dag(max_active_runs=3)], clock, by(n), holder=n) for n in "abc"]
    for second in range(1, 11):
        clock.t = T0 + second + 0.3
        threads = [threading.Thread(target=s.tick) for s in group]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in group:
            s.join()
    found = claims(store, "tick")
    assert sorted(found) == [T0 + i for i in range(1, 11)]
    assert len(ran) == 10
    assert sorted(run_id for _, run_id in ran) == sorted(c["run_id"] for c in found.values())


def test_a_finished_occurrence_is_not_run_again_by_a_late_scheduler(store: StateStore) -> None:
    clock = Clock(T0 + 0.2)
    ran: list[str] = []

    def run(d: DAG, run_id: str, stop: threading.Event) -> str:
        ran.append(run_id)
        return "succeeded"

    a = scheduler(store, [dag()], clock, run, holder="a")
    late = scheduler(store, [dag()], clock, run, holder="late")
    clock.t = T0 + 1.1
    a.tick()
    a.join()  # done, its lease released
    late.tick()  # finds the lease free, and the claim: create-only refuses it
    late.join()
    assert len(ran) == 1


def test_a_scheduler_whose_lease_was_taken_over_cannot_claim(tmp_path: Path) -> None:
    store_clock = ManualClock()
    lines: list[str] = []
    with open_store(f"sqlite:///{tmp_path / 'state.db'}", clock=store_clock) as store:
        clock = Clock(T0 + 0.2)
        ran: list[str] = []

        class Stalling(Scheduler):
            def _take_slot(self, occ: Any) -> Any:
                # Between acquiring the occurrence's lease and claiming it, this
                # scheduler stalls past the lease's ttl; another takes the lease over.
                store_clock.advance(11)
                store.acquire_lease(occurrence_lease("tick", occ.epoch), 10, holder="other")
                return super()._take_slot(occ)

        s = Stalling(
            store,
            [dag()],
            run=lambda d, r, stop: ran.append(r) or "succeeded",
            now=clock,
            new_run_id=new_run_id,
            lease_ttl=10,
            log=lines.append,
        )
        clock.t = T0 + 1.1
        s.tick()
        s.join()
        assert ran == []
        assert claim(store, "tick", T0 + 1) is None  # the fence refused the claim
        assert any("lease was taken over" in line and "stale" in line for line in lines), lines
        store.acquire_lease(slot_lease("tick", 0), 5, holder="x")  # the slot was released


def test_stop_tells_running_runs_to_stop_and_drops_waiting_ones(store: StateStore) -> None:
    runs = Runs()
    lines: list[str] = []
    s = Scheduler(
        store,
        [dag(overlap_policy="all")],
        run=runs,
        log=lines.append,
        poll=0.05,
        new_run_id=new_run_id,
    )
    loop = threading.Thread(target=s.run_forever)
    loop.start()
    _until(lambda: len(runs.started) == 1 and len(s.waiting("tick")) >= 1, timeout=5)
    waiting = s.waiting("tick")
    s.stop()
    loop.join(10)
    assert not loop.is_alive()
    assert runs.stopped == [runs.started[0][1]]
    found = claims(store, "tick")
    assert {found[e]["status"] for e in waiting} == {"dropped"}
    assert [c["status"] for c in found.values() if "run_id" in c] == ["aborted"]


def test_the_leases_are_renewed_while_a_run_runs(store: StateStore) -> None:
    runs = Runs()
    s = Scheduler(
        store, [dag()], run=runs, log=lambda line: None, new_run_id=new_run_id, lease_ttl=0.3
    )
    loop = threading.Thread(target=s.run_forever)
    loop.start()
    try:
        _until(lambda: len(runs.started) == 1, timeout=5)
        time.sleep(1.0)  # more than three ttls
        (epoch,) = [e for e, c in claims(store, "tick").items() if "run_id" in c]
        for name in (slot_lease("tick", 0), occurrence_lease("tick", epoch)):
            with pytest.raises(ConflictError):
                store.acquire_lease(name, 1, holder="another scheduler")
    finally:
        s.stop()
        loop.join(10)


def test_run_forever_runs_each_second(store: StateStore) -> None:
    ran: list[float] = []

    def run(d: DAG, run_id: str, stop: threading.Event) -> str:
        ran.append(time.time())
        return "succeeded"

    s = Scheduler(store, [dag()], run=run, log=lambda line: None, new_run_id=new_run_id)
    loop = threading.Thread(target=s.run_forever)
    loop.start()
    time.sleep(2.6)
    s.stop()
    loop.join(10)
    assert len(ran) in (2, 3)
    assert all(t - int(t) < 0.5 for t in ran)  # each close after its whole second


# -- the command ---------------------------------------------------------------------------


def _env(tmp_path: Path, store_url: str) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "STATEBOX_STORE": store_url,
        "STATEBOX_HOME": str(tmp_path / "home"),
        "PYTHONUNBUFFERED": "1",
    }


def _schedule(dags: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "statebox.cli", "schedule", str(dags), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_schedule_needs_a_directory_with_scheduled_dags(tmp_path: Path) -> None:
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    cmd = [sys.executable, "-m", "statebox.cli", "schedule"]
    missing = subprocess.run(
        [*cmd, str(tmp_path / "nope")], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 3, missing.stderr
    assert "nope" in missing.stderr
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "plain.yaml").write_text("steps:\n  - id: a\n    run: 'true'\n")
    (dags / "broken.yml").write_text("schedule: '* * * * * *'\nsteps:\n  - id: a\n    runn: x\n")
    none = subprocess.run([*cmd, str(dags)], env=env, capture_output=True, text=True)
    assert none.returncode == 2, none.stderr
    assert "broken.yml" in none.stderr  # the file that did not load is named
    assert "has a schedule" in none.stderr


WRITER_DAG = """\
schedule: "* * * * * *"
max_active_runs: 2
overlap_policy: all
steps:
  - id: record
    action: state.update
    with:
      scope: global
      key: runs
      jq: '(. // []) + ["${DAG_RUN_ID}"]'
"""


def _three_schedulers(tmp_path: Path, store_url: str, seconds: float) -> dict[str, Any]:
    """Three ``statebox schedule`` processes on ``store_url`` for ``seconds``; what they
    ran, checked: every occurrence between the start and the stop ran once, none twice."""
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    (dags / "every-second.yaml").write_text(WRITER_DAG)
    env = _env(tmp_path, store_url)
    procs = [_schedule(dags, env, "--lease-ttl", "10") for _ in range(3)]
    outputs: list[list[str]] = [[] for _ in procs]
    ready = [threading.Event() for _ in procs]

    def read(i: int) -> None:
        stream = procs[i].stdout
        assert stream is not None
        for line in stream:
            outputs[i].append(line)
            if line.startswith("statebox schedule:"):
                ready[i].set()

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(3)]
    for r in readers:
        r.start()
    try:
        for i, event in enumerate(ready):
            if not event.wait(30):
                procs[i].kill()
                raise AssertionError(f"scheduler {i} did not start: {procs[i].stderr.read()}")  # type: ignore[union-attr]
        started = time.time()
        time.sleep(seconds)
        stopped = time.time()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for r in readers:
        r.join(5)
    errors = [p.stderr.read() for p in procs]  # type: ignore[union-attr]
    assert codes == [0, 0, 0], errors
    with open_store(store_url) as store:
        found = claims(store, "every-second")
        recorded = store.get("runs", scope="global").value or []
        records = {r.run_id: r for r in RunRecords(store).list("every-second")}
    expected = {e for e in range(int(started) + 1, int(stopped))}
    ran = {e: c for e, c in found.items() if "run_id" in c}
    # Every occurrence between start and stop ran (the edges may or may not have).
    assert expected <= set(ran), sorted(expected - set(ran))
    assert all(ran[e]["status"] == "succeeded" for e in expected)
    # None ran twice: one claim per occurrence (its key), one run per claim, and the
    # step's own record holds each run once.
    assert len(recorded) == len(set(recorded)), "a run recorded twice"
    run_ids = [c["run_id"] for c in ran.values()]
    assert len(run_ids) == len(set(run_ids))
    finished = {c["run_id"] for c in ran.values() if c["status"] == "succeeded"}
    assert finished <= set(recorded) <= set(run_ids)
    started_lines = [line for out in outputs for line in out if ": started run " in line]
    assert len(started_lines) == len(run_ids)  # no process started a run not claimed
    # The run records (shared by every machine) hold each run once, started on time.
    assert sorted(records) == sorted(run_ids)
    delays = sorted(
        datetime.fromisoformat(records[c["run_id"]].started_at).timestamp() - e
        for e, c in ran.items()
    )
    by_holder: dict[str, int] = {}
    for c in ran.values():
        by_holder[c["holder"]] = by_holder.get(c["holder"], 0) + 1
    stats = {
        "seconds": round(stopped - started, 1),
        "expected": len(expected),
        "claimed": len(found),
        "ran": len(ran),
        "recorded": len(recorded),
        "by_scheduler": sorted(by_holder.values()),
        "statuses": sorted({c["status"] for c in found.values()}),
        "start_delay_ms": {
            "min": round(delays[0] * 1000),
            "median": round(delays[len(delays) // 2] * 1000),
            "max": round(delays[-1] * 1000),
        },
    }
    print(f"\nthree schedulers on {store_url.split(':')[0]}: {json.dumps(stats)}")
    return stats


def test_three_schedulers_on_one_sqlite_store_run_each_occurrence_once(tmp_path: Path) -> None:
    seconds = float(os.environ.get("STATEBOX_TEST_SCHEDULE_SECONDS", "20"))
    stats = _three_schedulers(tmp_path, f"sqlite:///{tmp_path / 'state.db'}", seconds)
    assert stats["expected"] >= int(seconds) - 2


def test_three_schedulers_on_one_postgres_store_run_each_occurrence_once(
    tmp_path: Path, pg_server: str
) -> None:
    seconds = float(os.environ.get("STATEBOX_TEST_SCHEDULE_PG_SECONDS", "8"))
    with fresh_schema_url(pg_server) as url:
        stats = _three_schedulers(tmp_path, url, seconds)
    assert stats["expected"] >= int(seconds) - 2


SLOW_DAG = """\
schedule: "* * * * * *"
steps:
  - id: wait
    run: sleep 30
"""


def test_sigterm_stops_the_running_run_and_exits_0(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "slow.yaml").write_text(SLOW_DAG)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    proc = _schedule(dags, _env(tmp_path, url))
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if ": started run " in line:
                break
        time.sleep(0.3)
        begun = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - begun
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert took < 10
    with open_store(url) as store:
        found = [c for c in claims(store, "slow").values() if "run_id" in c]
    assert [c["status"] for c in found] == ["aborted"]
