"""Every code block of README.md and docs/*.md runs, in the order written, or says why not.

Each page is run top to bottom in a fresh temporary directory with a fresh
``STATEBOX_HOME`` (so the default store is new and empty) and no run context unless
the page sets one:

- ``python`` blocks run in one namespace per page. An expression statement followed by
  a comment (on its line, or alone on the next) that reads as a Python literal is
  checked: ``x.version  # already past 1: 4`` asserts that the value is 4 (the comment's
  whole text, the text after its last ``: ``, or the text before its first ``, `` is
  tried); a ``print(...)`` is checked the same way against what it printed.
- ``console`` blocks: each ``$ command`` line runs in one bash session per page (so an
  ``export`` holds for the rest of the page); the lines after it, up to the next ``$``,
  are its expected standard output and error, compared line by line (see
  :func:`line_pattern` for the only normalizations).
- ``bash`` and ``sh`` blocks run in that session too and must exit 0 with nothing on
  standard error. A block that starts with ``#!`` is a script: it runs as a file, on a
  fresh store of its own.
- A block preceded by ``<!-- output of the block above -->`` is the output of the block
  before it, compared with what that block printed (a script), or with ``to_json()`` of
  the value of its last expression (Python).
- A console block preceded by ``<!-- run against a server at localhost:8787 -->`` runs
  the same way while a fresh ``statebox serve`` (over a SQLite file of its own) listens
  on a free port: ``localhost:8787`` in its commands is replaced by that address.
- Any other block (a synopsis, a file format, a server on a real host) must be preceded
  by ``<!-- not run: REASON -->``; a block that is neither run nor marked fails.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tokenize
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .test_cli import CONTEXT_VARIABLES, environment_without_context
from .test_cli_examples import JQ_FALLBACK

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!-- not run: (\S.*?) -->")
OUTPUT = "<!-- output of the block above -->"
SERVED = "<!-- run against a server at localhost:8787 -->"
DOCS_ADDRESS = "localhost:8787"
SHELLS = ("bash", "sh")
RUN = ("python", "console", *SHELLS)
COMMAND_TIMEOUT = 120.0


@dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    marker: str  # the HTML comment on the line before the fence, or ""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def not_run(self) -> bool:
        return NOT_RUN.fullmatch(self.marker) is not None

    @property
    def is_output(self) -> bool:
        return self.marker == OUTPUT

    @property
    def is_served(self) -> bool:
        return self.marker == SERVED and self.lang == "console"

    @property
    def is_script(self) -> bool:
        return self.lang in SHELLS and self.code.startswith("#!")


def parse_blocks(page: str, text: str) -> list[Block]:
    blocks = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        line = text.count("\n", 0, m.start()) + 1
        blocks.append(Block(page, line, m.group(1), m.group(2), before))
    return blocks


def unaccounted(blocks: list[Block]) -> list[str]:
    """The blocks that are neither run nor marked, as ``page:line (lang)``."""
    return [
        f"{b.where} ({b.lang or 'no language'})"
        for b in blocks
        if not (b.not_run or b.is_output or b.lang in RUN)
    ]


# --- comparing what was shown with what ran ---------------------------------------------

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z"


def line_pattern(shown: str) -> re.Pattern[str]:
    """What a shown output line matches. The only normalizations, each explicit:
    ``…`` stands for any text (the docs shorten hashes and the like to ``"…"``); a
    timestamp matches any timestamp (the clock is real); a run of spaces matches any
    run of spaces (a table's columns widen with its timestamps)."""
    out = []
    for part in re.split(f"(…|{TIMESTAMP}| +)", shown):
        if part == "…":
            out.append(".*?")
        elif re.fullmatch(TIMESTAMP, part):
            out.append(TIMESTAMP)
        elif part and part.strip(" ") == "":
            out.append(" +")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def assert_output(where: str, shown: str, actual: str) -> None:
    shown_lines, actual_lines = shown.splitlines(), actual.splitlines()
    ok = len(shown_lines) == len(actual_lines) and all(
        line_pattern(s).fullmatch(a) for s, a in zip(shown_lines, actual_lines, strict=True)
    )
    assert ok, f"{where}: the page shows\n{shown}\nbut it printed\n{actual}"


def json_matches(shown: Any, actual: Any) -> bool:
    """JSON equality, keys in the same order, with ``"…"`` matching any value and a
    timestamp matching any timestamp."""
    if shown == "…":
        return True
    if isinstance(shown, str) and isinstance(actual, str):
        both = re.fullmatch(TIMESTAMP, shown) and re.fullmatch(TIMESTAMP, actual)
        return bool(both) or shown == actual
    if isinstance(shown, dict) and isinstance(actual, dict):
        return list(shown) == list(actual) and all(
            json_matches(v, actual[k]) for k, v in shown.items()
        )
    if isinstance(shown, list) and isinstance(actual, list):
        return len(shown) == len(actual) and all(
            json_matches(s, a) for s, a in zip(shown, actual, strict=True)
        )
    return type(shown) is type(actual) and shown == actual


# --- Python blocks ------------------------------------------------------------------------

LITERAL_TYPES = (bool, int, float, str, list, tuple, dict)
_NOTHING = object()


def comment_values(comment: str) -> list[Any]:
    """The literals a comment may claim: its whole text, the text after its last
    ``: ``, the text before its first ``, ``."""
    text = comment.lstrip("#").strip()
    values = []
    for candidate in (text, text.rsplit(": ", 1)[-1], text.split(", ", 1)[0]):
        try:
            values.append(ast.literal_eval(candidate))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return values


def comments_by_line(code: str) -> dict[int, str]:
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    return {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}


def claimed_comment(stmt: ast.stmt, code_lines: list[str], comments: dict[int, str]) -> str:
    """The comment on the statement's last line, or alone on the line after it."""
    end = stmt.end_lineno or stmt.lineno
    if end in comments:
        return comments[end]
    if end < len(code_lines) and code_lines[end].lstrip().startswith("#"):
        return comments.get(end + 1, "")
    return ""


@dataclass
class PythonPage:
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__docs__"})
    last_value: Any = _NOTHING

    def run(self, block: Block) -> None:
        tree = ast.parse(block.code, block.where)
        ast.increment_lineno(tree, block.line)  # tracebacks name the page's own lines
        # Indexed by the page's line numbers, as the statements now are.
        lines = [""] * block.line + block.code.splitlines()
        comments = {n + block.line: c for n, c in comments_by_line(block.code).items()}
        filename = block.page
        self.last_value = _NOTHING
        for stmt in tree.body:
            if not isinstance(stmt, ast.Expr):
                exec(compile(ast.Module([stmt], []), filename, "exec"), self.namespace)
                self.last_value = _NOTHING
                continue
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                value = eval(compile(ast.Expression(stmt.value), filename, "eval"), self.namespace)
            comment = claimed_comment(stmt, lines, comments)
            self.check(block, stmt, value, printed.getvalue(), comment)
            self.last_value = value

    @staticmethod
    def check(block: Block, stmt: ast.stmt, value: Any, printed: str, comment: str) -> None:
        if not comment:
            return
        claims = comment_values(comment)
        text = comment.lstrip("#").strip()
        where = f"{block.page}:{stmt.lineno}"
        if printed:
            said = printed.strip()
            assert said in (text, text.rsplit(": ", 1)[-1], text.split(", ", 1)[0]), (
                f"{where}: the comment says {comment!r} but it printed {said!r}"
            )
        elif claims and type(value) in LITERAL_TYPES:
            assert value in claims, f"{where}: the comment says {comment!r} but it is {value!r}"


# --- shell blocks -------------------------------------------------------------------------


class Shell:
    """One bash process per page: commands run in order and share its state."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,  # so that close() can end whatever a command left
        )
        self.cwd = cwd

    def run(self, command: str, where: str, *, merge: bool) -> tuple[str, int, str]:
        """Run ``command`` with no standard input: its output (with standard error when
        ``merge``, as a terminal shows it), its status (which ``$?`` keeps for the next
        command), and its standard error when not merged."""
        marker = f"__docs_{uuid.uuid4().hex}__"
        err = self.cwd / f".{marker}.err"
        redirect = "2>&1" if merge else f"2>{err}"
        script = (
            f"{{\n{command}\n}} </dev/null {redirect}\n"
            f"__status=$?; printf '\\n{marker} %d\\n' \"$__status\"; (exit $__status)\n"
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(script.encode())
        self.proc.stdin.flush()
        data = b""
        end = f"\n{marker} ".encode()
        fd = self.proc.stdout.fileno()
        while not (end in data and data.endswith(b"\n") and data.rsplit(end, 1)[1].strip()):
            ready, _, _ = select.select([fd], [], [], COMMAND_TIMEOUT)
            assert ready, f"{where}: no answer within {COMMAND_TIMEOUT} s: {command}"
            chunk = os.read(fd, 65536)
            assert chunk, f"{where}: the shell ended while running: {command}"
            data += chunk
        out, status = data.rsplit(end, 1)
        stderr = err.read_text() if err.exists() else ""
        err.unlink(missing_ok=True)
        return out.decode(), int(status), stderr

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a command still running: a failed page
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def console_steps(block: Block) -> Iterator[tuple[str, str, int]]:
    """``(command, shown output, line)`` for each ``$`` line of a console block."""
    command: str | None = None
    shown: list[str] = []
    start = 0
    for n, line in enumerate(block.code.splitlines(), block.line + 1):
        if line.startswith("$ "):
            if command is not None:
                yield command, "\n".join(shown), start
            command, shown, start = line[2:], [], n
        else:
            assert command is not None, f"{block.page}:{n}: output before any $ command"
            shown.append(line)
    if command is not None:
        yield command, "\n".join(shown), start


# --- a page -------------------------------------------------------------------------------


@dataclass
class Page:
    env: dict[str, str]
    cwd: Path
    fresh_env: Callable[[], dict[str, str]]  # the environment with a store of its own
    python: PythonPage = field(default_factory=PythonPage)
    shell: Shell | None = None
    last_output: str | None = None  # what the last script printed
    server: subprocess.Popen[str] | None = None
    address: str = ""

    def run(self, blocks: list[Block]) -> int:
        ran = 0
        previous: Block | None = None  # the block just above, run or not
        for block in blocks:
            if block.not_run:
                previous = block
                continue
            if block.is_output:
                assert previous is not None and not previous.not_run, (
                    f"{block.where}: the output of a block that does not run"
                )
                self.check_output(previous, block)
            elif block.lang == "python":
                self.python.run(block)
            elif block.lang == "console":
                address = self.server_address() if block.is_served else DOCS_ADDRESS
                for command, shown, line in console_steps(block):
                    command = command.replace(DOCS_ADDRESS, address)
                    out, _, _ = self.sh.run(command, f"{block.page}:{line}", merge=True)
                    assert_output(f"{block.page}:{line}", shown, out.removesuffix("\n"))
            elif block.is_script:
                self.run_script(block)
            elif block.lang in SHELLS:
                out, status, stderr = self.sh.run(block.code, block.where, merge=False)
                assert status == 0 and not stderr, f"{block.where}: exit {status}\n{stderr}"
            else:
                pytest.fail(
                    f"{block.where}: a {block.lang or 'plain'} block, neither run nor marked"
                )
            ran += 1
            previous = block
        return ran

    @property
    def sh(self) -> Shell:
        if self.shell is None:
            self.shell = Shell(self.env, self.cwd)
        return self.shell

    def run_script(self, block: Block) -> None:
        script = self.cwd / f"script-{block.line}.sh"
        script.write_text(block.code)
        script.chmod(0o755)
        done = subprocess.run(
            [str(script)],
            env=self.fresh_env(),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert done.returncode == 0 and not done.stderr, f"{block.where}: {done.stderr}"
        self.last_output = done.stdout

    def check_output(self, previous: Block, block: Block) -> None:
        if previous.is_script:
            assert self.last_output is not None
            assert_output(block.where, block.code.rstrip("\n"), self.last_output.rstrip("\n"))
        elif previous.lang == "python":
            value = self.python.last_value
            assert hasattr(value, "to_json"), f"{block.where}: {previous.where} ends in no result"
            shown, actual = json.loads(block.code), json.loads(value.to_json())
            assert json_matches(shown, actual), f"{block.where}: shown {shown}, got {actual}"
        else:
            pytest.fail(f"{block.where}: the output of a {previous.lang} block is not checked")

    def server_address(self) -> str:
        """``localhost:PORT`` of the page's server, started the first time it is needed."""
        if self.server is None:
            assert shutil.which("curl"), "the docs' examples of the HTTP API need curl"
            store = f"sqlite:///{self.cwd / 'served.db'}"
            self.server = subprocess.Popen(
                ["statebox", "serve", "--port", "0", "--store", store, "--no-access-log"],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert self.server.stdout is not None
            first = self.server.stdout.readline()  # "… listening on http://127.0.0.1:PORT …"
            port = re.search(r"http://127\.0\.0\.1:(\d+)", first)
            assert port, f"the server did not start: {first!r}"
            self.address = f"localhost:{port.group(1)}"
        return self.address

    def close(self) -> None:
        if self.shell is not None:
            self.shell.close()
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=30)


@pytest.fixture
def page_runner(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Page]:
    """A fresh directory, store and environment; Python blocks see the same ones."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if shutil.which("jq") is None:  # the jq program, else the same filters in Python
        (bin_dir / "jq").write_text(f"#!{sys.executable}\n{JQ_FALLBACK}")
        (bin_dir / "jq").chmod(0o755)

    def environment() -> dict[str, str]:
        env = environment_without_context(tmp_path_factory)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
        return env

    env = environment()
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")  # the README runs examples/*.sh
    for name in CONTEXT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STATEBOX_HOME", env["STATEBOX_HOME"])
    monkeypatch.chdir(work)
    page = Page(env, work, environment)
    yield page
    page.close()


# --- the tests ----------------------------------------------------------------------------


def page_blocks(page: str) -> list[Block]:
    return parse_blocks(page, (ROOT / page).read_text())


def test_every_fence_is_found() -> None:
    """No block hides from the runner: an indented or unclosed fence would."""
    for page in PAGES:
        fences = re.findall(r"^\s*```", (ROOT / page).read_text(), re.M)
        assert len(fences) == 2 * len(page_blocks(page)), page


def test_every_block_is_run_or_marked() -> None:
    missing = [where for page in PAGES for where in unaccounted(page_blocks(page))]
    assert not missing, f"blocks neither run nor marked <!-- not run: why -->: {missing}"
    markers = [b for p in PAGES for b in page_blocks(p) if b.marker.startswith("<!--")]
    unknown = [b.where for b in markers if not (b.not_run or b.is_output or b.is_served)]
    assert not unknown, f"markers this test does not know: {unknown}"


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_in_order(page: str, page_runner: Page) -> None:
    blocks = page_blocks(page)
    page_runner.run(blocks)


# --- the runner itself fails when a page is wrong -----------------------------------------


def run_text(page_runner: Page, text: str) -> int:
    return page_runner.run(parse_blocks("page.md", text))


GOOD = """\
```python
from statebox import RunContext, open_store
store = open_store("memory://", context=RunContext(dag="d"))
store.set("k", {"n": 1})
store.get("k").version  # version: 1
[v.version for v in store.history("k").versions]
# [1]
print(store.get("k").found)  # True
store.get("k")
```
<!-- output of the block above -->
```json
{"operation":"get","scope":"dag","namespace":"d","key":"k","found":true,"version":1,"hash":"…","value":{"n":1}}
```

```console
$ export STATEBOX_DAG=d
$ statebox set k 1
{"operation":"set","scope":"dag","namespace":"d","key":"k","version":1,"hash":"…","created":true}
$ statebox get nope --required
Error: key "nope" not found in scope "dag", namespace "d"
$ echo $?
3
```
"""


def test_a_correct_page_passes(page_runner: Page) -> None:
    assert run_text(page_runner, GOOD) == 3


@pytest.mark.parametrize(
    "wrong",
    [
        ("# version: 1", "# version: 2"),  # a comment that lies
        ("# [1]", "# [2]"),  # on the line after
        ("# True", "# False"),  # what a print printed
        ('"found":true', '"found":false'),  # shown output that differs
        ('"key":"k","version":1,"hash"', '"key":"k","version":2,"hash"'),  # the console
        ("$ echo $?\n3", "$ echo $?\n0"),  # the exit status
        ("$ export STATEBOX_DAG=d\n", ""),  # a command that needs a context it lacks
    ],
)
def test_a_wrong_page_fails(page_runner: Page, wrong: tuple[str, str]) -> None:
    assert wrong[0] in GOOD
    with pytest.raises(AssertionError):
        run_text(page_runner, GOOD.replace(*wrong, 1))


def test_an_unmarked_block_is_reported() -> None:
    text = "```\nstatebox get KEY\n```\n\n<!-- not run: a synopsis -->\n```\nstatebox\n```\n"
    blocks = parse_blocks("page.md", text)
    assert unaccounted(blocks) == ["page.md:1 (no language)"]
    assert blocks[1].not_run


def test_an_output_block_belongs_to_the_block_just_above(page_runner: Page) -> None:
    text = GOOD.replace(
        "<!-- output of the block above -->\n",
        "<!-- not run: x -->\n```\nx\n```\n<!-- output of the block above -->\n",
    )
    with pytest.raises(AssertionError, match="does not run"):
        run_text(page_runner, text)


def test_a_failing_shell_block_fails(page_runner: Page) -> None:
    with pytest.raises(AssertionError, match="exit"):
        run_text(page_runner, "```bash\nstatebox get k\n```\n")  # no run context: exit 2
