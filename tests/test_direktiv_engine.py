"""The Direktiv instance interpreter (:func:`statebox.runner.direktiv.engine.run_workflow`):
every state type, the data flow (input wrapping, ``transform``, ``.return``, ``.error``
and ``catch``), the run record, timeouts and stop, and — the key feature — no lost
updates: concurrent threads and processes incrementing one workflow variable through
getter → transform → setter add exactly their number, and a conflict with an action in
between is the catchable ``statebox.var.conflict``. Real SQLite files, real ``sh -c``
commands, real loopback HTTP.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from statebox import ConflictError, InvalidReferenceError, RunContext, StateStore, open_store
from statebox.runner.direktiv import engine
from statebox.runner.direktiv._states import go_sprintf
from statebox.runner.direktiv.model import (
    Action,
    Catch,
    Condition,
    FileSpec,
    Function,
    GetVar,
    SetVar,
    State,
    Workflow,
)
from statebox.runner.executor import RunOptions
from statebox.runner.records import RunRecord, RunRecords

PY = sys.executable


class Env:
    """A SQLite store file and ways to run workflows on it."""

    def __init__(self, path: Path) -> None:
        self.dir = path
        self.url = f"sqlite:///{path / 'state.db'}"

    def store(self, **context: str) -> StateStore:
        return open_store(self.url, context=RunContext(**context))

    def run(
        self, wf: Workflow, input: Any = None, stop: threading.Event | None = None, **kw: Any
    ) -> RunRecord:
        with self.store() as store:
            options = RunOptions(store_url=self.url, input=input, **kw)
            return engine.run_workflow(wf, store, options, stop=stop)

    def var(self, scope: str, key: str, namespace: str | None = None) -> Any:
        with self.store(dag="wf", root_dag="wf") as store:
            got = store.get(key, scope=scope, namespace=namespace)
            return got.value if got.found else None

    def record(self, run_id: str) -> RunRecord:
        with self.store() as store:
            return RunRecords(store).get(run_id)

    def log(self, run_id: str, step: str) -> str:
        with self.store() as store:
            return RunRecords(store).log(run_id, step)

    def set_var(self, scope: str, key: str, value: Any) -> None:
        with self.store(dag="wf", root_dag="wf") as store:
            store.set(key, value, scope=scope)

    def script(self, name: str, text: str) -> str:
        path = self.dir / name
        path.write_text(text)
        return f"{PY} {path}"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def workflow(*states: State, functions: dict[str, Function] | None = None, **kw: Any) -> Workflow:
    return Workflow(
        name="wf",
        path=None,
        states=states,
        start=states[0].id,
        functions=functions or {},
        **kw,
    )


def visits(record: RunRecord) -> list[tuple[str, str]]:
    return [(s.name, s.status) for s in record.steps]


# --- data flow --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "data"),
    [
        (None, {}),
        ({"a": 1}, {"a": 1}),
        ([1, 2], {"input": [1, 2]}),
        ("text", {"input": "text"}),
        (5, {"input": 5}),
    ],
)
def test_input_is_wrapped_as_direktiv_wraps_it(env: Env, given: Any, data: Any) -> None:
    record = env.run(workflow(State("a", "noop")), input=given)
    assert record.status == "succeeded"
    assert record.input == data
    assert record.output == data
    assert record.dag == "wf" and record.params == []


def test_transform_replaces_the_data_and_transitions_follow(env: Env) -> None:
    wf = workflow(
        State("a", "noop", transform={"x": "jq(.n + 1)", "kept": "jq(.n)"}, transition="b"),
        State("b", "noop", transform="jq({y: (.x * 10)})"),
    )
    record = env.run(wf, input={"n": 1, "drop": True})
    assert record.output == {"y": 20}
    assert visits(record) == [("a", "succeeded"), ("b", "succeeded")]
    stored = env.record(record.run_id)
    assert stored.output == {"y": 20} and stored.status == "succeeded"


def test_a_transform_that_is_not_an_object_fails_catchably(env: Env) -> None:
    failed = env.run(workflow(State("a", "noop", transform="jq(.n)")), input={"n": 1})
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.startswith("direktiv.jq.notObject: ")
    caught = env.run(
        workflow(
            State("a", "noop", transform="jq(.n)", catch=(Catch("notObject", "h"),)),
            State("h", "noop"),
        ),
        input={"n": 1},
    )
    assert caught.status == "succeeded"
    assert caught.output["error"]["code"] == "direktiv.jq.notObject"


def test_log_is_kept_per_state_and_shown(env: Env) -> None:
    seen: list[tuple[str, str, str | None]] = []

    class Shown:
        def run_started(self, dag: str, run_id: str) -> None:
            seen.append(("run", "running", None))

        def step_changed(self, step: str, status: str, **kw: Any) -> None:
            seen.append((step, status, kw.get("message")))

        def run_finished(self, dag: str, run_id: str, status: str, duration: float) -> None:
            seen.append(("run", status, None))

        def close(self) -> None:
            pass

    wf = workflow(
        State("a", "noop", log="hello jq(.name)", transition="b"),
        State("b", "noop", log="jq(.)"),
    )
    record = env.run(wf, input={"name": "ada"}, display=Shown())
    assert env.log(record.run_id, "a") == "hello ada\n"
    assert json.loads(env.log(record.run_id, "b")) == {"name": "ada"}
    assert ("a", "running", "hello ada") in seen
    assert seen[0] == ("run", "running", None) and seen[-1] == ("run", "succeeded", None)


def test_a_record_too_large_for_the_store_is_still_saved_final(env: Env) -> None:
    """600 visits, a store taking 16 KiB per value: the record is saved with its latest
    visits and says how many were left out; the input (over a quarter of the limit) is
    a string saying it was left out."""
    wf = workflow(
        State("inc", "noop", transform="jq(.n += 1)", transition="more"),
        State(
            "more",
            "switch",
            conditions=(Condition("jq(.n < 300)", transition="inc"),),
        ),
    )
    with open_store(env.url, json_limit=16384) as store:
        options = RunOptions(store_url=env.url, input={"n": 0, "pad": "x" * 5000})
        record = engine.run_workflow(wf, store, options)
    assert record.status == "succeeded" and len(record.steps) == 600
    saved = env.record(record.run_id)
    assert saved.status == "succeeded" and saved.finished_at is not None
    assert 0 < len(saved.steps) < 600 and saved.steps[-1].name == "more"
    assert saved.error == (
        f"the first {600 - len(saved.steps)} of 600 state visits are left out of this "
        "record to fit the store's value limit"
    )
    assert isinstance(saved.input, str) and "more than the 4096 a run record" in saved.input


def test_a_given_run_id_that_exists_is_refused(env: Env) -> None:
    wf = workflow(State("a", "noop"))
    env.run(wf, run_id="one")
    with pytest.raises(ConflictError):
        env.run(wf, run_id="one")
    for bad in ("a/b", " one", ".."):
        with pytest.raises(InvalidReferenceError, match="invalid run id"):
            env.run(wf, run_id=bad)


# --- getter / setter ----------------------------------------------------------------------


def test_setter_then_getter_round_trip_and_var_is_replaced(env: Env) -> None:
    wf = workflow(
        State(
            "set",
            "setter",
            variables=(
                SetVar("a", "workflow", value="jq(.x)"),
                SetVar("b", "namespace", value={"deep": [1, "jq(.x)"]}),
                SetVar("c", "instance", value="plain"),
            ),
            transition="get",
        ),
        State(
            "get",
            "getter",
            variables=(
                GetVar("a", "workflow"),
                GetVar("b", "namespace", as_="bee"),
                GetVar("c", "instance"),
                GetVar("missing", "workflow"),
                GetVar("instance", "system", as_="me"),
            ),
        ),
    )
    record = env.run(wf, input={"x": 7, "var": {"old": True}})
    assert record.status == "succeeded", record.error
    assert record.output["var"] == {
        "a": 7,
        "bee": {"deep": [1, 7]},
        "c": "plain",
        "missing": None,
        "me": record.run_id,
    }
    assert env.var("dag", "a") == 7
    assert env.var("global", "b") == {"deep": [1, 7]}
    # The instance scope is gone with the instance.
    assert env.var("run", "c", namespace=record.run_id) is None


def test_a_literal_null_deletes_and_a_jq_null_is_an_error(env: Env) -> None:
    env.set_var("dag", "gone", 1)
    env.set_var("dag", "zero", 1)
    wf = workflow(
        State(
            "set",
            "setter",
            variables=(SetVar("gone", "workflow", value=None), SetVar("zero", "workflow", value=0)),
        )
    )
    assert env.run(wf).status == "succeeded"
    assert env.var("dag", "gone") is None
    assert env.var("dag", "zero") == 0
    bad = env.run(workflow(State("s", "setter", variables=(SetVar("k", "workflow", "jq(.no)"),))))
    assert bad.status == "failed"
    assert bad.error is not None and bad.error.startswith("direktiv.jq.badCommand")
    assert env.var("dag", "k") is None


def test_a_setter_writes_nothing_when_one_value_fails(env: Env) -> None:
    wf = workflow(
        State(
            "set",
            "setter",
            variables=(
                SetVar("first", "workflow", value=1),
                SetVar("second", "workflow", "jq(.x)"),
            ),
        )
    )
    assert env.run(wf).status == "failed"
    assert env.var("dag", "first") is None


def test_switch_loop_over_the_three_scopes(env: Env) -> None:
    """The issue's switch loop: five increments of each scope per run."""

    def getter(state_id: str, transition: str) -> State:
        return State(
            state_id,
            "getter",
            variables=tuple(GetVar(f"n_{s}", s) for s in ("instance", "workflow", "namespace")),
            transition=transition,
        )

    wf = workflow(
        getter("get", "inc"),
        State(
            "inc",
            "setter",
            variables=tuple(
                SetVar(f"n_{s}", s, value=f"jq((.var.n_{s} // 0) + 1)")
                for s in ("instance", "workflow", "namespace")
            ),
            transition="check",
        ),
        getter("check", "loop"),
        State(
            "loop",
            "switch",
            conditions=(Condition("jq(.var.n_instance < 5)", transition="get"),),
            default_transform={"counts": "jq(.var)"},
        ),
    )
    first = env.run(wf)
    assert first.status == "succeeded", first.error
    assert first.output == {"counts": {"n_instance": 5, "n_workflow": 5, "n_namespace": 5}}
    second = env.run(wf)
    assert second.output == {"counts": {"n_instance": 5, "n_workflow": 10, "n_namespace": 10}}
    assert len(second.steps) == 20


# --- switch, delay, validate, error, catch --------------------------------------------------


def test_switch_picks_the_first_true_condition_else_the_defaults(env: Env) -> None:
    wf = workflow(
        State(
            "s",
            "switch",
            conditions=(
                Condition("jq(.n > 10)", transform={"r": "big"}, transition="end"),
                Condition("jq(.n > 1)", transform={"r": "mid"}, transition="end"),
            ),
            default_transform={"r": "small"},
            default_transition="end",
        ),
        State("end", "noop"),
    )
    assert env.run(wf, input={"n": 50}).output == {"r": "big"}
    assert env.run(wf, input={"n": 5}).output == {"r": "mid"}
    assert env.run(wf, input={"n": 0}).output == {"r": "small"}
    truth = workflow(
        State(
            "s",
            "switch",
            conditions=(Condition("jq(.v)", transform={"r": 1}),),
            default_transform={"r": 0},
        )
    )
    falsy: Any
    for falsy in (False, 0, "", [], {}):
        assert env.run(truth, input={"v": falsy}).output == {"r": 0}
    for true in (True, 1, "x", [0], {"a": None}):
        assert env.run(truth, input={"v": true}).output == {"r": 1}


def test_a_switch_condition_error_is_not_catchable(env: Env) -> None:
    wf = workflow(
        State("s", "switch", conditions=(Condition("jq(.a.b.c)"),), catch=(Catch("*", "h"),)),
        State("h", "noop"),
    )
    record = env.run(wf, input={"a": 1})
    assert record.status == "failed"
    assert visits(record) == [("s", "failed")]


def test_delay_waits_and_stop_aborts_it(env: Env) -> None:
    started = time.monotonic()
    assert env.run(workflow(State("d", "delay", duration_sec=0.3))).status == "succeeded"
    assert time.monotonic() - started >= 0.3
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    record = env.run(workflow(State("d", "delay", duration_sec=30)), stop=stop)
    assert record.status == "aborted"
    assert time.monotonic() - started < 5
    assert visits(record) == [("d", "aborted")]


def test_validate_passes_and_fails_with_the_path(env: Env) -> None:
    schema = {
        "type": "object",
        "properties": {"age": {"type": "integer"}},
        "required": ["age"],
    }
    wf = workflow(
        State("v", "validate", schema=schema, catch=(Catch("direktiv.schema.*", "h"),)),
        State("h", "noop"),
    )
    assert visits(env.run(wf, input={"age": 3})) == [("v", "succeeded")]
    bad = env.run(wf, input={"age": "x"})
    assert bad.output["error"]["code"] == "direktiv.schema.failed"
    assert ".age" in bad.output["error"]["msg"]
    assert visits(bad)[-1] == ("h", "succeeded")
    subject = workflow(State("v", "validate", subject="jq(.inner)", schema=schema))
    assert env.run(subject, input={"inner": {"age": 1}}).status == "succeeded"


def test_error_state_fails_the_instance_but_goes_on(env: Env) -> None:
    wf = workflow(
        State(
            "e",
            "error",
            error="bad.input",
            message="got %v items, need %d: %s",
            args=("jq(.n)", "jq(.need)", "jq(.why)"),
            transition="cleanup",
        ),
        State("cleanup", "noop", transform={"cleaned": True}),
    )
    record = env.run(wf, input={"n": 2, "need": 3, "why": "short"})
    assert record.status == "failed"
    assert record.error == "bad.input: got 2 items, need 3: short"
    assert record.output == {"cleaned": True}
    assert [s.name for s in record.steps] == ["e", "cleanup"]
    twice = workflow(
        State("e", "error", error="one", message="first", transition="f"),
        State("f", "error", error="two", message="second"),
    )
    record = env.run(twice)
    assert record.error == (
        "direktiv.workflow.multipleErrors: the workflow instance tried to throw multiple errors"
    )


def test_go_sprintf() -> None:
    assert go_sprintf("%v|%s|%d|%q|%%", [1.5, "a", 3, "b"]) == '1.5|a|3|"b"|%'
    assert go_sprintf("%v %v", [1]) == "1 %!v(MISSING)"
    assert go_sprintf("x", [1]) == "x%!(EXTRA float64=1)"
    assert go_sprintf("%v", [{"b": [1, None]}]) == "map[b:[1 <nil>]]"
    assert go_sprintf("%v", [1e6]) == "1e+06"


@pytest.mark.parametrize(
    ("pattern", "caught"),
    [
        ("*", True),
        ("schema", True),
        ("^schema$", False),
        ("direktiv.sch.*", True),
        ("other", False),
        ("[", False),
    ],
)
def test_catch_patterns_are_unanchored_regexes(env: Env, pattern: str, caught: bool) -> None:
    wf = workflow(
        State(
            "a",
            "validate",
            schema={"type": "string"},
            catch=(Catch(pattern, "h"),),
        ),
        State("h", "noop"),
    )
    record = env.run(wf, input={"x": 1})
    assert (record.status == "succeeded") is caught
    assert record.output["error"]["code"] == "direktiv.schema.failed"


def test_a_catch_without_transition_ends_the_instance_succeeded(env: Env) -> None:
    wf = workflow(State("a", "validate", schema={"type": "string"}, catch=(Catch("*"),)))
    record = env.run(wf, input={"x": 1})
    assert record.status == "succeeded"
    assert record.output["error"]["code"] == "direktiv.schema.failed"
    assert visits(record) == [("a", "failed")]


# --- timeouts -------------------------------------------------------------------------------


def test_interrupt_is_a_catchable_soft_timeout(env: Env) -> None:
    wf = workflow(
        State("d", "delay", duration_sec=30, catch=(Catch("direktiv.cancels.timeout.soft", "h"),)),
        State("h", "noop"),
        interrupt_sec=0.3,
    )
    started = time.monotonic()
    record = env.run(wf)
    assert time.monotonic() - started < 5
    assert record.status == "succeeded"
    assert record.output["error"] == {
        "code": "direktiv.cancels.timeout.soft",
        "msg": "operation timed out",
    }


def test_kill_fails_the_instance(env: Env) -> None:
    wf = workflow(
        State("d", "delay", duration_sec=30, catch=(Catch("*", "d"),)),
        interrupt_sec=0.1,
        kill_sec=0.4,
    )
    record = env.run(wf)
    assert record.status == "failed"
    assert record.error == "direktiv.cancels.timeout.hard: workflow timed out"


# --- no lost updates ---------------------------------------------------------------------


def counter(pause: float = 0.0, **kw: Any) -> Workflow:
    """The seed's counter: getter → (a pure pause) → transform → setter."""
    return workflow(
        State("get", "getter", variables=(GetVar("counter", "workflow"),), transition="wait"),
        State("wait", "delay", duration_sec=pause, transition="inc"),
        State("inc", "noop", transform={"next": "jq((.var.counter // 0) + 1)"}, transition="set"),
        State("set", "setter", variables=(SetVar("counter", "workflow", value="jq(.next)"),)),
        **kw,
    )


def test_the_counter_run_three_times_is_three(env: Env) -> None:
    for _ in range(3):
        assert env.run(counter()).status == "succeeded"
    assert env.var("dag", "counter") == 3


def test_eight_threads_add_exactly_eight(env: Env) -> None:
    env.run(counter())  # the variable exists: every instance reads version 1 or later
    records: list[RunRecord] = []
    barrier = threading.Barrier(8)

    def one() -> None:
        barrier.wait()
        records.append(env.run(counter(pause=0.05)))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in records] == ["succeeded"] * 8, [r.error for r in records]
    assert env.var("dag", "counter") == 9
    retried = [s for r in records for s in r.steps if s.status == "retrying"]
    assert retried, "eight overlapping instances must have met a conflict"
    assert all(
        s.name == "set" and "running the states from getter get again (attempt" in (s.error or "")
        for s in retried
    )
    assert all("of 100)" in (s.error or "") for s in retried)


def _count_in_process(url: str, start: Any) -> tuple[str, int]:
    with open_store(url) as store:
        options = RunOptions(store_url=url)
        start.wait()  # all eight are up: their segments overlap
        record = engine.run_workflow(counter(pause=0.05), store, options)
    return record.status, sum(1 for s in record.steps if s.status == "retrying")


def test_eight_processes_add_exactly_eight(env: Env) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(8)
        with context.Pool(8) as pool:
            pending = [pool.apply_async(_count_in_process, (env.url, start)) for _ in range(8)]
            results = [p.get(timeout=120) for p in pending]
    assert [status for status, _ in results] == ["succeeded"] * 8
    assert env.var("dag", "counter") == 8
    assert sum(retried for _, retried in results) > 0, "the instances must have overlapped"


def test_reruns_are_bounded_then_the_conflict_is_catchable(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "MAX_SEGMENT_RERUNS", 3)
    env.set_var("dag", "counter", 0)
    done = threading.Event()

    def meddle() -> None:  # another writer, faster than the instance's segment
        n = 100
        with env.store(dag="wf", root_dag="wf") as store:
            while not done.is_set():
                n += 1
                store.set("counter", n, scope="dag")
                time.sleep(0.005)

    writer = threading.Thread(target=meddle)
    writer.start()
    try:
        wf = counter(pause=0.05)
        wf = workflow(
            *wf.states[:3],
            State(
                "set",
                "setter",
                variables=(SetVar("counter", "workflow", value="jq(.next)"),),
                catch=(Catch("statebox.var.conflict", "h"),),
            ),
            State("h", "noop"),
        )
        record = env.run(wf)
    finally:
        done.set()
        writer.join()
    assert record.status == "succeeded"
    assert record.output["error"]["code"] == "statebox.var.conflict"
    assert [s.status for s in record.steps if s.name == "set"] == ["retrying"] * 3 + ["failed"]
    assert "run 3 times" in record.output["error"]["msg"]


class _WriteWhenEntered:
    """A display that, when state ``when`` is first entered, sets workflow variable
    ``key`` through another store handle: another writer, at a known point."""

    def __init__(self, env: Env, when: str, key: str, value: Any) -> None:
        self.env, self.when, self.key, self.value = env, when, key, value
        self.done = False

    def run_started(self, *args: Any) -> None:
        pass

    def run_finished(self, *args: Any) -> None:
        pass

    def step_changed(self, name: str, status: str, **kw: Any) -> None:
        if name == self.when and status == "running" and not self.done:
            self.done = True
            self.env.set_var("dag", self.key, self.value)


def test_a_setter_that_committed_is_a_barrier_for_reruns(env: Env) -> None:
    """getter reads x and y → s1 writes y+1 → (x changes) → s2 writes x+1: going back to
    the getter would add to y twice, so the conflict on x is ``statebox.var.conflict``
    and y is written once."""
    env.set_var("dag", "x", 0)
    env.set_var("dag", "y", 0)
    wf = workflow(
        State(
            "get",
            "getter",
            variables=(GetVar("x", "workflow"), GetVar("y", "workflow")),
            transform={"x": "jq(.var.x + 1)", "y": "jq(.var.y + 1)"},
            transition="s1",
        ),
        State(
            "s1",
            "setter",
            variables=(SetVar("y", "workflow", value="jq(.y)"),),
            transition="between",
        ),
        State("between", "noop", transition="s2"),
        State(
            "s2",
            "setter",
            variables=(SetVar("x", "workflow", value="jq(.x)"),),
            catch=(Catch("statebox.var.conflict", "h"),),
        ),
        State("h", "noop"),
    )
    record = env.run(wf, display=_WriteWhenEntered(env, "between", "x", 100))
    assert env.var("dag", "y") == 1
    assert env.var("dag", "x") == 100  # the other writer's, not overwritten
    assert record.status == "succeeded", record.error
    assert record.output["error"]["code"] == "statebox.var.conflict"
    assert visits(record) == [
        ("get", "succeeded"), ("s1", "succeeded"), ("between", "succeeded"),
        ("s2", "failed"), ("h", "succeeded"),
    ]  # fmt: skip


# --- actions ---------------------------------------------------------------------------------

ECHO = f"{PY} -c 'import json,sys; print(json.dumps({{\"got\": json.load(sys.stdin)}}))'"


def fn(cmd: str, fid: str = "f") -> dict[str, Function]:
    return {fid: Function(fid, cmd=cmd)}


def test_action_result_lands_at_return(env: Env) -> None:
    wf = workflow(
        State("a", "action", action=Action("f", input={"n": "jq(.n)"}), transition="b"),
        State("b", "action", action=Action("raw")),
        functions={**fn(ECHO), **fn("printf 'not json'", "raw")},
    )
    record = env.run(wf, input={"n": 2})
    assert record.status == "succeeded", record.error
    assert record.output["n"] == 2
    assert record.output["return"] == "bm90IGpzb24="  # base64 of the bytes
    assert record.steps[0].output == '{"got":{"n":2}}'


def test_action_without_input_gets_the_whole_data_and_secrets(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("token", "s3cret")
    wf = workflow(State("a", "action", action=Action("f", secrets=("token",))), functions=fn(ECHO))
    record = env.run(wf, input={"x": 1})
    assert record.output["return"] == {"got": {"x": 1, "secrets": {"token": "s3cret"}}}
    assert "secrets" not in {k for k in record.output if k != "return"}


def test_a_failing_command_is_catchable_and_its_stderr_logged(env: Env) -> None:
    wf = workflow(
        State("a", "action", action=Action("f"), catch=(Catch("io.direktiv.error.*", "h"),)),
        State("h", "noop"),
        functions=fn("echo oops >&2; exit 3"),
    )
    record = env.run(wf)
    assert record.status == "succeeded"
    assert record.output["error"]["code"] == "io.direktiv.error.execution"
    assert "oops" in env.log(record.run_id, "a")


def test_files_in_and_out_folders_back(env: Env) -> None:
    script = env.script(
        "edit.py",
        "import os\n"
        "note = open('note.txt').read()\n"
        "open('out/workflow/result', 'w').write(note.upper())\n"
        "os.makedirs('out/instance/dir')\n"
        "print('{}')\n",
    )
    wf = workflow(
        State(
            "set",
            "setter",
            variables=(SetVar("note", "workflow", value="hello", mime_type="text/plain"),),
            transition="act",
        ),
        State(
            "act",
            "action",
            action=Action("f", files=(FileSpec("note", "workflow", as_="note.txt"),)),
            transition="get",
        ),
        State("get", "getter", variables=(GetVar("result", "workflow"),)),
        functions=fn(script),
    )
    record = env.run(wf)
    assert record.status == "succeeded", record.error
    assert record.output["var"]["result"] == "SEVMTE8="  # not JSON: base64 of HELLO
    with env.store(dag="wf", root_dag="wf") as store:
        stored = store.get("result", scope="dag").stored
        assert stored is not None and stored.data == b"HELLO"


def test_the_var_endpoint_keeps_state_across_runs(env: Env) -> None:
    script = env.script(
        "tf.py",
        "import os, urllib.request, urllib.error\n"
        "base = os.environ['STATEBOX_VAR_URL']\n"
        "aid = os.environ['STATEBOX_ACTION_ID']\n"
        "url = f'{base}/var?aid={aid}&scope=workflow&key=tfstate'\n"
        "try:\n"
        "    n = int(urllib.request.urlopen(url).read())\n"
        "except urllib.error.HTTPError as e:\n"
        "    assert e.code == 404\n"
        "    n = 0\n"
        "req = urllib.request.Request(url, data=str(n + 1).encode(), method='POST',\n"
        "                             headers={'Content-Type': 'text/plain'})\n"
        "urllib.request.urlopen(req).read()\n"
        "print(n + 1)\n",
    )
    wf = workflow(State("tf", "action", action=Action("f")), functions=fn(script))
    assert env.run(wf).output["return"] == 1
    assert env.run(wf).output["return"] == 2


def test_foreach_runs_each_element_in_order_at_most_three_at_once(env: Env) -> None:
    script = env.script(
        "slow.py",
        "import json, sys, time\n"
        "d = json.load(sys.stdin)\n"
        "t0 = time.time(); time.sleep(0.3 - d['i'] * 0.03)\n"
        "print(json.dumps({'i': d['i'], 'span': [t0, time.time()]}))\n",
    )
    wf = workflow(
        State(
            "each",
            "foreach",
            array="jq([.items[] | {i: .}])",
            action=Action("f", input={"i": "jq(.i)"}),
        ),
        functions=fn(script),
    )
    record = env.run(wf, input={"items": [0, 1, 2, 3, 4, 5]})
    assert record.status == "succeeded", record.error
    results = record.output["return"]
    assert [r["i"] for r in results] == [0, 1, 2, 3, 4, 5]
    spans = [r["span"] for r in results]
    most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert 2 <= most <= 3
    empty = env.run(wf, input={"items": [], "return": "kept"})
    assert empty.output["return"] == "kept"
    bad = env.run(wf, input={"items": 5})
    assert bad.error is not None and bad.error.startswith("direktiv.jq.badCommand")


def test_foreach_elements_must_be_objects(env: Env) -> None:
    wf = workflow(
        State("each", "foreach", array="jq(.items)", action=Action("f")), functions=fn(ECHO)
    )
    record = env.run(wf, input={"items": [1]})
    assert record.error is not None and record.error.startswith("direktiv.jq.notObject")


def test_parallel_and_needs_all_or_takes_the_first(env: Env) -> None:
    functions = {
        **fn("sleep 0.2; echo 1", "slow"),
        **fn("echo 2", "fast"),
        **fn("exit 1", "bad"),
        **fn("sleep 30; echo 3", "stuck"),
    }
    both = workflow(
        State("p", "parallel", actions=(Action("slow"), Action("fast"))), functions=functions
    )
    assert env.run(both).output["return"] == [1, 2]
    one_bad = workflow(
        State("p", "parallel", actions=(Action("stuck"), Action("bad"))), functions=functions
    )
    started = time.monotonic()
    failed = env.run(one_bad)
    assert failed.error is not None and failed.error.startswith("io.direktiv.error.execution")
    assert time.monotonic() - started < 10  # the stuck one was stopped
    first = workflow(
        State("p", "parallel", mode="or", actions=(Action("stuck"), Action("bad"), Action("fast"))),
        functions=functions,
    )
    started = time.monotonic()
    assert env.run(first).output["return"] == [None, None, 2]
    assert time.monotonic() - started < 10
    none = workflow(
        State("p", "parallel", mode="or", actions=(Action("bad"), Action("bad"))),
        functions=functions,
    )
    assert env.run(none).error == "direktiv.parallel.allFailed: all branches failed"


def test_an_action_timeout_is_catchable(env: Env) -> None:
    wf = workflow(
        State(
            "a",
            "action",
            action=Action("f"),
            timeout_sec=0.3,
            catch=(Catch("direktiv.cancels.timeout.soft", "h"),),
        ),
        State("h", "noop"),
        functions=fn("sleep 30"),
    )
    started = time.monotonic()
    record = env.run(wf)
    assert time.monotonic() - started < 10
    assert record.status == "succeeded"
    assert record.output["error"]["code"] == "direktiv.cancels.timeout.soft"


def test_stop_kills_the_running_command_and_aborts(env: Env, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    wf = workflow(
        State("a", "action", action=Action("f")), functions=fn(f"echo $$ > {pid_file}; sleep 30")
    )
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    record = env.run(wf, stop=stop)
    assert record.status == "aborted"
    assert time.monotonic() - started < 10
    assert visits(record) == [("a", "aborted")]
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_conflict_with_an_action_between_is_catchable(env: Env) -> None:
    """getter → action → setter: the action's side effect cannot be run again, so a
    conflict (here: the action itself bumps the variable through another store handle,
    as any other writer would) is ``statebox.var.conflict``, caught."""
    env.set_var("dag", "counter", 1)
    script = env.script(
        "bump.py",
        "from statebox import open_store, RunContext\n"
        f"with open_store({env.url!r}, context=RunContext(dag='wf', root_dag='wf')) as s:\n"
        "    s.set('counter', 100, scope='dag')\n"
        "print('{}')\n",
    )
    states = (
        State("get", "getter", variables=(GetVar("counter", "workflow"),), transition="act"),
        State("act", "action", action=Action("f"), transition="set"),
    )
    setter = SetVar("counter", "workflow", value="jq(.var.counter + 1)")
    caught = workflow(
        *states,
        State("set", "setter", variables=(setter,), catch=(Catch("statebox.var.conflict", "h"),)),
        State("h", "noop"),
        functions=fn(script),
    )
    record = env.run(caught)
    assert record.status == "succeeded", record.error
    assert record.output["error"]["code"] == "statebox.var.conflict"
    assert env.var("dag", "counter") == 100  # nothing written over the other writer's
    assert [s.status for s in record.steps] == ["succeeded", "succeeded", "failed", "succeeded"]
    uncaught = workflow(*states, State("set", "setter", variables=(setter,)), functions=fn(script))
    record = env.run(uncaught)
    assert record.status == "failed"
    assert record.error is not None and record.error.startswith("statebox.var.conflict: ")


def test_an_async_action_runs_on_and_is_waited_for(env: Env, tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    wf = workflow(
        State("a", "action", action=Action("f"), async_=True, transition="b"),
        State("b", "noop", transform={"went": "on"}),
        functions=fn(f"sleep 0.3; touch {mark}"),
    )
    record = env.run(wf)
    assert record.output == {"went": "on"}
    assert mark.exists()


# --- from a YAML file ------------------------------------------------------------------------

EVERY_STATE = """
description: every state type, loaded by the loader and run
functions:
- id: echo
  cmd: cat
states:
- id: start
  type: validate
  schema:
    type: object
    required: [items]
  transition: get
- id: get
  type: getter
  variables:
  - key: counter
    scope: workflow
  transition: set
- id: set
  type: setter
  variables:
  - key: counter
    scope: workflow
    value: 'jq((.var.counter // 0) + 1)'
  transition: pause
- id: pause
  type: delay
  duration: PT0.01S
  transition: each
- id: each
  type: foreach
  array: 'jq([.items[] | {v: .}])'
  action:
    function: echo
  transition: both
- id: both
  type: parallel
  mode: and
  actions:
  - function: echo
    input: 'jq(.return)'
  - function: echo
    input: {one: 1}
  transition: act
- id: act
  type: action
  log: 'acting on jq(.items | length) items'
  action:
    function: echo
    input: {x: 'jq(.items[0])'}
  transform:
    result: 'jq(.return.x)'
    counter: 'jq(.var.counter // "none")'
  transition: which
- id: which
  type: switch
  conditions:
  - condition: 'jq(.result > 100)'
    transition: fail
  defaultTransition: done
- id: fail
  type: error
  error: too.big
  message: 'too big: %v'
  args: ['jq(.result)']
- id: done
  type: noop
"""


def test_a_yaml_workflow_with_every_state_type(env: Env) -> None:
    from statebox.runner.direktiv.loader import load_workflow

    path = env.dir / "every.yaml"
    path.write_text(EVERY_STATE)
    wf = load_workflow(str(path))
    record = env.run(wf, input={"items": [1, 2]})
    assert record.status == "succeeded", record.error
    assert record.output == {"result": 1, "counter": "none"}  # what the getter read
    assert [s.name for s in record.steps] == [
        "start", "get", "set", "pause", "each", "both", "act", "which", "done",
    ]  # fmt: skip
    assert record.steps[5].output == '[[{"v":1},{"v":2}],{"one":1}]'
    assert env.log(record.run_id, "act") == "acting on 2 items\n"
    assert env.var("dag", "counter", namespace="every") == 1
    big = env.run(wf, input={"items": [500]})
    assert big.status == "failed"
    assert big.error == "too.big: too big: 500"
    assert [s.name for s in big.steps][-1] == "fail"
    assert env.var("dag", "counter", namespace="every") == 2
