"""Issue #15's "How it is shown", each point through the real command line: ``statebox
run`` and ``statebox validate`` subprocesses on a real SQLite file, the workflows of
``examples/direktiv/`` as they are, the instance's final data read back from its run
record (``statebox runs show``) and the variables with ``statebox get``."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "direktiv"
STATEBOX = Path(sys.executable).parent / "statebox"


class Box:
    """The ``statebox`` executable on one SQLite file, with no run context; action
    temp directories under ``tmp`` (``TMPDIR``), so a test can see what they left."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEBOX_", "DAG_"))}
        env["STATEBOX_STORE"] = f"sqlite:///{root / 'state.db'}"
        env["STATEBOX_HOME"] = str(root / "home")
        env["TMPDIR"] = str(self.tmp)
        self.env = env

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STATEBOX), *args],
            cwd=self.root,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def run(self, workflow: Path | str, *args: str) -> tuple[int, dict[str, Any]]:
        """Run the workflow; its exit code and its run record."""
        run_id = str(uuid.uuid4())
        done = self.cli("run", str(workflow), "--run-id", run_id, *args)
        return done.returncode, self.record(run_id)

    def record(self, run_id: str) -> dict[str, Any]:
        shown = self.cli("runs", "show", run_id)
        assert shown.returncode == 0, shown.stderr
        record: dict[str, Any] = json.loads(shown.stdout)
        return record

    def get(self, key: str, *scope: str) -> Any:
        """The value of ``key`` (None when missing); ``scope``: the CLI's options."""
        shown = self.cli("get", key, *scope)
        assert shown.returncode == 0, shown.stderr
        found = json.loads(shown.stdout)
        return found["value"] if found["found"] else None

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


def _ok(result: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    code, record = result
    assert code == 0 and record["status"] == "succeeded", record
    return record


# -- the seed's counter ---------------------------------------------------------------


def test_the_seeds_counter_run_three_times_holds_3(box: Box) -> None:
    for n in (1, 2, 3):
        record = _ok(box.run(EXAMPLES / "counter.yaml"))
        assert record["dag"] == "counter"
        assert record["output"] == {"var": {"x": n}}
    assert box.get("x", "--dag", "counter") == 3


@pytest.mark.slow
def test_eight_concurrent_instances_add_exactly_eight(box: Box) -> None:
    """The seed's own counter, which Direktiv "makes no effort" to keep: eight
    ``statebox run`` processes at once, and not one increment lost."""
    _ok(box.run(EXAMPLES / "counter.yaml"))  # 1, and the store's file exists
    procs = [
        subprocess.Popen(
            [str(STATEBOX), "run", str(EXAMPLES / "counter.yaml")],
            cwd=box.root,
            env=box.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    assert box.get("x", "--dag", "counter") == 9
    # Each instance that lost a race says so in its record, and still succeeded.
    runs = json.loads(box.cli("runs", "--dag", "counter", "--limit", "0").stdout)["runs"]
    assert len(runs) == 9 and {r["status"] for r in runs} == {"succeeded"}


# -- the switch loop over the three scopes ---------------------------------------------


def test_the_switch_loop_counts_in_each_scope(box: Box) -> None:
    first = _ok(box.run(EXAMPLES / "scopes.yaml"))
    assert first["output"]["loops"] == {"instance": 5, "workflow": 5, "namespace": 5}
    second = _ok(box.run(EXAMPLES / "scopes.yaml"))
    assert second["output"]["loops"] == {"instance": 5, "workflow": 10, "namespace": 10}
    # Where they live: the workflow's in its dag scope, the namespace's in the global
    # scope; the instance's went with each instance (its run scope is deleted).
    assert box.get("loops", "--dag", "scopes") == 10
    assert box.get("loops", "--scope", "global") == 10
    for record in (first, second):
        assert box.get("loops", "--scope", "run", "--run-id", record["run_id"]) is None


# -- MIME types -------------------------------------------------------------------------


def test_mime_types_are_stored_and_read_back_as_direktiv_does(box: Box) -> None:
    record = _ok(box.run(EXAMPLES / "mime.yaml"))
    assert record["output"]["var"] == {
        "StringVar": "hello\nworld",  # JSON: a string
        "ObjectVar": [{"key": "value"}],  # YAML given, stored as JSON
        "TextVar": base64.b64encode(b"hello\nworld").decode(),  # text that is no JSON
        "MessageVar": "aGVsbG8gZnJvbSBkaXJla3Rpdg==",  # the decoded bytes, read as base64
    }
    assert box.get("StringVar", "--dag", "mime") == "hello\nworld"
    assert box.get("ObjectVar", "--dag", "mime") == [{"key": "value"}]
    # The text and the bytes are binary entries, with their content types.
    for key, data, mime in (
        ("TextVar", b"hello\nworld", "text/plain"),
        ("MessageVar", b"hello from direktiv", "application/octet-stream"),
    ):
        shown = json.loads(box.cli("get", key, "--dag", "mime").stdout)
        assert base64.b64decode(shown["value"]) == data, shown
        assert shown["contentType"] == mime and shown["encoding"] == "base64"


# -- a folder through a command --------------------------------------------------------


def test_a_tar_gz_folder_goes_round_a_command_and_the_next_run_sees_it(box: Box) -> None:
    for n in (1, 2, 3):
        record = _ok(box.run(EXAMPLES / "folder.yaml"))
        assert record["output"]["return"] == n
    shown = json.loads(box.cli("get", "site", "--dag", "folder").stdout)
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(shown["value"])), mode="r:gz") as tar:
        counts = [m for m in tar.getmembers() if m.name.rstrip("/").endswith("count")]
        assert len(counts) == 1
        member = tar.extractfile(counts[0])
        assert member is not None and member.read().strip() == b"3"
    assert list(box.tmp.iterdir()) == []  # each action's temp directory was removed


# -- hostile archives ------------------------------------------------------------------

UNPACK = """
# Stores the archive given as input in a variable, then hands it to a command as a
# tar.gz folder; the command would leave a mark.
states:
- id: keep
  type: setter
  variables:
  - key: archive
    scope: workflow
    value: 'jq(.archive)'
    mimeType: application/octet-stream
  transition: use
- id: use
  type: action
  action:
    function: mark
    input: {}
    files:
    - key: archive
      scope: workflow
      type: tar.gz
functions:
- id: mark
  cmd: touch "$MARK" && ls -R archive && cp -R archive out/workflow/unpacked
"""


def _targz(members: Sequence[tarfile.TarInfo], data: dict[str, bytes]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info in members:
            content = data.get(info.name)
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return base64.b64encode(buffer.getvalue()).decode()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


#: Each archive, and the member its refusal names.
HOSTILE = {
    "tar-slip": ([_member("ok.txt"), _member("../../escaped.txt")], "../../escaped.txt"),
    "symlink": ([_member("ok.txt"), _member("link", tarfile.SYMTYPE, "/etc/passwd")], "link"),
    "hardlink": ([_member("ok.txt"), _member("hard", tarfile.LNKTYPE, "ok.txt")], "hard"),
    "device": ([_member("ok.txt"), _member("null", tarfile.CHRTYPE)], "null"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_archive_is_refused_and_nothing_is_written(box: Box, kind: str) -> None:
    unpack = box.write("unpack.yaml", UNPACK)
    mark = box.root / "mark"
    box.env["MARK"] = str(mark)
    members, named = HOSTILE[kind]
    archive = _targz(members, {"ok.txt": b"ok\n", "../../escaped.txt": b"gotcha\n"})
    code, record = box.run(unpack, "--input", json.dumps({"archive": archive}))
    assert code == 1 and record["status"] == "failed", record
    assert f"'{named}'" in record["error"] and "archive" in record["error"], record
    assert not mark.exists()  # the command never ran
    assert not list(box.root.rglob("escaped.txt"))  # nothing landed anywhere
    assert not list(box.root.rglob("ok.txt"))  # not even the harmless member
    assert list(box.tmp.iterdir()) == []  # the temp directory is gone
    assert box.get("unpacked", "--dag", "unpack") is None  # no out/ variable written


def test_a_harmless_archive_goes_through(box: Box) -> None:
    """The same workflow with a plain archive: what the refusals above refuse is the
    archive, not the workflow. A leading / is relative to the target directory."""
    unpack = box.write("unpack.yaml", UNPACK)
    mark = box.root / "mark"
    box.env["MARK"] = str(mark)
    members = [_member("ok.txt"), _member("/sub/abs.txt")]
    archive = _targz(members, {"ok.txt": b"ok\n", "/sub/abs.txt": b"abs\n"})
    _ok(box.run(unpack, "--input", json.dumps({"archive": archive})))
    assert mark.exists()
    assert box.get("unpacked", "--dag", "unpack") is not None


# -- /var: the Terraform pattern --------------------------------------------------------


def test_a_command_keeps_its_state_file_through_var(box: Box) -> None:
    for serial in (1, 2, 3):
        record = _ok(box.run(EXAMPLES / "terraform.yaml"))
        assert record["output"] == {"serial": serial}
    assert box.get("tfstate", "--dag", "terraform") is not None


# -- statebox validate, each kind of invalid file ----------------------------------------

INVALID = {
    "unknown-state-type": (
        """
        states:
        - id: a
          type: gettr
        """,
        "3:9",
        "gettr",
    ),
    "unknown-key": (
        """
        states:
        - id: a
          type: noop
          transiton: a
        """,
        "4:3",
        "transiton",
    ),
    "bad-state-id": (
        """
        states:
        - id: 1bad
          type: noop
        """,
        "2:7",
        "1bad",
    ),
    "duplicate-id": (
        """
        states:
        - id: a
          type: noop
        - id: a
          type: noop
        """,
        "4:",
        'state id "a"',
    ),
    "unknown-transition": (
        """
        states:
        - id: a
          type: noop
          transition: b
        """,
        "4:15",
        "b",
    ),
    "undeclared-function": (
        """
        states:
        - id: a
          type: action
          action:
            function: nope
        """,
        "5:15",
        "nope",
    ),
    "image-only-function": (
        """
        functions:
        - id: f
          image: direktiv/request:v4
        states:
        - id: a
          type: action
          action:
            function: f
        """,
        "2:",
        "cmd:",
    ),
    "bad-duration": (
        """
        states:
        - id: a
          type: delay
          duration: 5 seconds
        """,
        "4:13",
        "5 seconds",
    ),
    "bad-scope": (
        """
        states:
        - id: a
          type: getter
          variables:
          - key: x
            scope: cluster
        """,
        "6:12",
        "cluster",
    ),
    "unbalanced-jq": (
        """
        states:
        - id: a
          type: noop
          transform: 'jq(.x'
        """,
        "4:",
        "bracket",
    ),
    "bad-schema": (
        """
        states:
        - id: a
          type: validate
          schema: {type: banana}
        """,
        "4:",
        "schema",
    ),
    "bad-cron": (
        """
        start:
          type: scheduled
          cron: "every day"
        states:
        - id: a
          type: noop
        """,
        "3:",
        "cron",
    ),
    "js-expression": (
        """
        states:
        - id: a
          type: noop
          transform: 'js(return {})'
        """,
        "4:",
        "js(",
    ),
    "missing-scope": (
        """
        states:
        - id: a
          type: setter
          variables:
          - key: x
            value: 1
        """,
        "5:",
        "scope",
    ),
    "subflow": (
        """
        functions:
        - id: child
          type: subflow
          workflow: child
        states:
        - id: a
          type: action
          action:
            function: child
        """,
        "2:",
        "subflow",
    ),
    "bad-file-type": (
        """
        functions:
        - id: f
          cmd: "true"
        states:
        - id: a
          type: action
          action:
            function: f
            files:
            - key: x
              type: zip
        """,
        "11:",
        "zip",
    ),
    "yaml-syntax": (
        """
        states:
        - id: a
          type: [noop
        """,
        "4:1",
        "invalid YAML",
    ),
}


@pytest.mark.parametrize("kind", sorted(INVALID))
def test_validate_rejects_each_kind_of_invalid_workflow_with_its_line(box: Box, kind: str) -> None:
    text, where, words = INVALID[kind]
    path = box.write(f"{kind}.yaml", text)
    done = box.cli("validate", path.name)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines, done.stderr
    assert any(line.startswith(f"{path.name}:{where}") and words in line for line in lines), (
        done.stderr
    )
    # run refuses it the same way, before anything runs
    ran = box.cli("run", path.name)
    assert ran.returncode == 2 and ran.stderr.splitlines()[: len(lines)] == lines


def test_validate_accepts_every_example(box: Box) -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    done = box.cli("validate", *files)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{f}: ok" for f in files]
