"""The run's masker (:mod:`statebox.runner.masking`, issue #16): what it registers of a
secret value, how it masks text, JSON data, a run record and a log file, and the
masked display. Runs that use it: tests/test_runner_secrets.py,
tests/test_direktiv_secrets.py."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from statebox.core.envelope import envelope_json
from statebox.core.model import Keyspace
from statebox.core.results import GetResult, StoredValue
from statebox.runner import masking
from statebox.runner.display import PlainDisplay
from statebox.runner.masking import Masker, masked_display

SECRET = 'p"w\\séc-ret'  # a quote, a backslash and a letter JSON may escape


def test_an_empty_masker_gives_back_what_it_is_given() -> None:
    masker = Masker()
    data = {"steps": [{"output": "x"}]}
    assert not masker
    assert masker.mask("abc") == "abc"
    assert masker.mask_data(data) is data
    assert masker.mask_record(data) is data


def test_string_leaves_and_the_json_text_are_masked_in_every_escaping() -> None:
    masker = Masker()
    masker.add_value({"user": "svc", "password": SECRET, "port": 5432})
    assert masker.mask(f"login {SECRET}!") == "login ***!"
    for ascii_only in (False, True):
        once = json.dumps({"pw": SECRET}, ensure_ascii=ascii_only)
        twice = json.dumps({"line": once}, ensure_ascii=ascii_only)
        assert SECRET not in masker.mask(once) and json.loads(masker.mask(once)) == {"pw": "***"}
        assert json.loads(json.loads(masker.mask(twice))["line"]) == {"pw": "***"}
    # The whole value's JSON goes before its leaves, and stays JSON: "***" as a string.
    whole = json.dumps({"user": "svc", "password": SECRET, "port": 5432}, separators=(",", ":"))
    assert json.loads(masker.mask(f'{{"v":{whole}}}')) == {"v": "***"}
    # Short leaves and numbers inside are not secrets of their own.
    assert masker.mask("svc 5432") == "svc 5432"


def test_short_values_true_false_and_null_are_not_registered() -> None:
    masker = Masker()
    for value in ("abc", True, False, None, 7, [1], {}):
        masker.add_value(value)
    assert not masker
    masker.add_value(12345678)
    assert masker.mask('{"pin":12345678} pin 12345678') == '{"pin":"***"} pin "***"'


def test_structured_data_masks_equal_values_and_strings() -> None:
    masker = Masker()
    masker.add_value({"password": "hunter2-x", "pin": 987654})
    masker.add_value(987654)
    data = {
        "creds": {"password": "hunter2-x", "pin": 987654},
        "pin": 987654,
        "text": "is hunter2-x?",
        "hunter2-x": True,
        "other": [1, None, "ok"],
    }
    assert masker.mask_data(data) == {
        "creds": "***",
        "pin": "***",
        "text": "is ***?",
        "***": True,
        "other": [1, None, "ok"],
    }


def test_a_record_keeps_its_names_ids_and_statuses() -> None:
    masker = Masker()
    masker.add_text("succeeded-secret")
    masker.add_text("run-7")
    record: dict[str, Any] = {
        "run_id": "run-7",
        "dag": "run-7",
        "status": "succeeded",
        "params": ["X=succeeded-secret"],
        "error": "run-7 failed",
        "input": {"k": "succeeded-secret"},
        "output": None,
        "steps": [{"name": "run-7", "status": "failed", "output": "run-7", "error": None}],
    }
    masked = masker.mask_record(record)
    assert (masked["run_id"], masked["dag"], masked["steps"][0]["name"]) == ("run-7",) * 3
    assert masked["params"] == ["X=***"]
    assert masked["error"] == "*** failed"
    assert masked["input"] == {"k": "***"}
    assert masked["steps"][0]["output"] == "***"
    assert record["params"] == ["X=succeeded-secret"]  # the record itself is not changed


def test_stored_values_json_text_and_binary() -> None:
    masker = Masker()
    masker.add_stored(StoredValue(b'"tok-SECRET-456"', secret=True))
    raw = b"\x00\x01binary-secret"
    masker.add_stored(StoredValue(raw, "application/octet-stream", secret=True))
    text = StoredValue(b'{"k": "in-text-json"}', "text/plain", secret=True)
    masker.add_stored(text)
    import base64

    for shown in ("tok-SECRET-456", base64.b64encode(raw).decode(), "in-text-json"):
        assert masker.mask(f"[{shown}]") == "[***]"


def test_envelopes_register_what_the_masked_one_hides() -> None:
    keyspace = Keyspace("dag", "d")
    stored = StoredValue(b'{"password":"envelope-secret"}', secret=True)
    result = GetResult(keyspace, "k", True, 1, "h", stored)
    masker = Masker()
    masker.add_envelopes(envelope_json(result), envelope_json(result, reveal=True))
    assert masker.mask("envelope-secret") == "***"
    masker = Masker()
    masker.add_envelopes(envelope_json(result), envelope_json(result))  # nothing shown
    assert not masker


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_a_log_file_is_masked_in_place_across_chunks(
    chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(masking, "_CHUNK", chunk)
    masker = Masker()
    masker.add_text("tok-SECRET-456")
    masker.add_text("SECRET-4567890")
    rng = random.Random(chunk)
    path = tmp_path / "step.out"
    for _ in range(50):
        pieces = ["tok-SECRET-456", "SECRET-4567890", "tok-", "x", "é", "\n", "\xff"]
        text = "".join(rng.choice(pieces) for _ in range(40))
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        masker.mask_file(str(path))
        assert path.read_bytes() == masker.mask(text).encode("utf-8", "surrogateescape")
        assert b"tok-SECRET-456" not in path.read_bytes()


def test_the_display_shows_messages_masked() -> None:
    masker = Masker()
    out = io.StringIO()
    display = masked_display(PlainDisplay(out), masker)
    assert display is not None and masked_display(display, masker) is display
    assert masked_display(None, masker) is None
    masker.add_text("tok-SECRET-456")
    display.step_changed("s", "failed", message="bad tok-SECRET-456")
    assert out.getvalue().endswith("step s failed bad ***\n")


def test_each_line_of_a_multi_line_secret_and_no_huge_text() -> None:
    masker = Masker()
    masker.add_text("-----BEGIN KEY-----\r\nMIIEvQIBADAN\nab\n-----END KEY-----")
    assert masker.mask("got MIIEvQIBADAN here") == "got *** here"
    assert masker.mask("ab") == "ab"  # a line too short to mask
    huge = "x" * (masking._MAX_LENGTH + 1)
    masker.add_text(huge)
    assert masker.mask(huge) == huge
