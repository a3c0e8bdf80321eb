"""The Python examples in README.md and docs/operations.md run, and print what they say."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from statebox import ManualClock, RunContext, open_store

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```(python|json)\n(.*?)```", re.S)


def blocks(doc: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer((ROOT / doc).read_text())]


def test_operations_examples_run_and_match_their_output_shapes() -> None:
    ctx = RunContext(dag="feed-sync", run_id="run-1")
    with open_store("memory://", context=ctx, clock=ManualClock()) as store:
        store.set("cursors/feed", {"last_id": 123})
        store.set("snapshots/feed", {"count": 2})
        found = blocks("docs/operations.md")
        assert found, "no examples found"
        pending_result = None
        for lang, code in found:
            if lang == "python":
                namespace = {"store": store}
                *body, last = code.strip().splitlines()
                if last.startswith("store."):
                    exec("\n".join(body), namespace)
                    pending_result = eval(last.split("  #")[0], namespace)
                else:
                    exec(code, namespace)
                    pending_result = None
            elif pending_result is not None:
                shown = json.loads(code)
                actual = json.loads(pending_result.to_json())
                assert list(shown) == list(actual), (shown, actual)
                assert shown["operation"] == actual["operation"]


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md"])
def test_python_blocks_compile(doc: str) -> None:
    for lang, code in blocks(doc):
        if lang == "python":
            compile(code, doc, "exec")
