"""The runner's examples: the README shows examples/feed-sync.yaml as it is, and that
file is the seed's first example, verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "feed-sync.yaml"


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()


def test_the_readme_shows_the_example_file_as_it_is() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(name: feed-sync\n.*?)```", readme, re.S)
    assert len(blocks) == 1
    assert blocks[0].strip() == _without_comments(EXAMPLE.read_text())


def test_the_example_is_the_seeds_first_example() -> None:
    # The seed's text lost its indentation; compare line by line without it.
    seed = ROOT.parent / "shared" / "seeds" / "002_ab928e35fae3c3ae.txt"
    if not seed.exists():  # a checkout without the seeds beside it
        seed_lines = _SEED_FIRST_EXAMPLE
    else:
        text = seed.read_text()
        start = text.index("name: feed-sync")
        end = text.index("depends: parse_last_id", start) + len("depends: parse_last_id")
        seed_lines = [line.strip() for line in text[start:end].splitlines() if line.strip()]
        assert seed_lines == _SEED_FIRST_EXAMPLE
    ours = [
        line.strip().removeprefix("- ")
        for line in _without_comments(EXAMPLE.read_text()).splitlines()
        if line.strip()
    ]
    assert ours == [line.removeprefix("- ") for line in seed_lines]


# The seed's first example, line by line (its indentation was lost in the seed's text).
_SEED_FIRST_EXAMPLE = [
    "name: feed-sync",
    'schedule: "0 * * * *"',
    "steps:",
    "- id: load_cursor",
    "action: state.get",
    "output: CURSOR",
    "with:",
    "key: cursors/feed",
    "default:",
    "last_id: 0",
    "- id: fetch",
    'run: ./fetch-feed --after "${CURSOR.value.last_id}" > result.json',
    "depends: load_cursor",
    "- id: parse_last_id",
    "run: jq -r '.last_id' result.json",
    "output: LAST_ID",
    "depends: fetch",
    "- id: save_cursor",
    "action: state.set",
    "with:",
    "key: cursors/feed",
    "value:",
    'last_id: "${LAST_ID}"',
    "depends: parse_last_id",
]
