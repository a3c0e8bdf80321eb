"""Results are data; :mod:`statebox.core.envelope` renders their Dagu envelopes (issue #13,
item 7).

The golden lines below are what ``to_json()`` printed before the rendering moved out of
the result classes, for one of each result on a real store (binary values, a TTL's
``expiresAt``, missing entries, defaults, deletions, paging, leases, watch events): the
renderer must give them byte for byte, on the memory and the SQLite backend alike. Every
result class must have a renderer, and none may build an envelope itself.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import statebox.core.envelope as envelope_module
from statebox import Blob, ManualClock, RunContext, StateStore, open_store
from statebox.core import results, results_beyond
from statebox.core.envelope import (
    EmbeddedJSON,
    dumps_envelope,
    envelope,
    envelope_data,
    envelope_json,
    renderer,
)
from statebox.core.results import GetResult, PurgeResult, StoredValue, WatchResult
from statebox.core.values import RawJSON

CORE = Path(envelope_module.__file__).parent
RESULT_MODULES = (results, results_beyond)

# name=line, one a line (the lines hold no whitespace).
GOLDEN = r"""
set-created={"operation":"set","scope":"dag","namespace":"feed-sync","key":"cursor","version":1,"hash":"508e6bdc10a3d57fa5aa12dc01dcd7917de120b3bf1c51da7c069e631a7b345a","created":true}
set-updated={"operation":"set","scope":"dag","namespace":"feed-sync","key":"cursor","version":2,"hash":"9e7e65453739bbc64ba155eed18a37bd5fb1196c7f29ded1da660b94414d7ad8","created":false}
set-binary={"operation":"set","scope":"dag","namespace":"feed-sync","key":"blob","version":1,"hash":"0af2e4f24c9bf81d376ad2dbb11edcc2d8f186ebeadf0b76934a6721de168deb","created":true}
set-ttl={"operation":"set","scope":"dag","namespace":"feed-sync","key":"timed","version":1,"hash":"1a60b208ff491c3e2d21cdd5abb003e51e97b072efec59098863da45021de6a9","created":true}
set-custom={"operation":"set","scope":"custom","namespace":"ns&co","key":"k<1>","version":1,"hash":"d1a4dc8b61ef51fa5f72b229df8d29b26f391b9fbbd3ec9078b7c9f66b9cc59a","created":true}
get={"operation":"get","scope":"dag","namespace":"feed-sync","key":"cursor","found":true,"version":2,"hash":"9e7e65453739bbc64ba155eed18a37bd5fb1196c7f29ded1da660b94414d7ad8","value":{"id":2}}
get-ttl={"operation":"get","scope":"dag","namespace":"feed-sync","key":"timed","found":true,"version":1,"hash":"1a60b208ff491c3e2d21cdd5abb003e51e97b072efec59098863da45021de6a9","expiresAt":"2026-01-01T00:01:01.5Z","value":1.50}
get-binary={"operation":"get","scope":"dag","namespace":"feed-sync","key":"blob","found":true,"version":1,"hash":"0af2e4f24c9bf81d376ad2dbb11edcc2d8f186ebeadf0b76934a6721de168deb","value":"AAFiaW7/","contentType":"image/png","encoding":"base64"}
get-missing={"operation":"get","scope":"dag","namespace":"feed-sync","key":"nope","found":false}
get-missing-default-null={"operation":"get","scope":"dag","namespace":"feed-sync","key":"nope","found":false,"value":null}
get-missing-default={"operation":"get","scope":"dag","namespace":"feed-sync","key":"nope","found":false,"value":{"last_id":0}}
get-past-version={"operation":"get","scope":"dag","namespace":"feed-sync","key":"cursor","found":true,"version":1,"hash":"508e6bdc10a3d57fa5aa12dc01dcd7917de120b3bf1c51da7c069e631a7b345a","value":{"id":1,"é":"\u003cü\u003e\u0026"}}
diff-changed={"operation":"diff","scope":"dag","namespace":"feed-sync","key":"cursor","changed":true,"foundPrevious":true,"previousVersion":2,"version":3,"hash":"a22883e93273fa52419f3f34bb7e1125f2cd14a1f32561e419adc15324916c4b","previous":{"id":2},"current":{"id":3}}
diff-unchanged={"operation":"diff","scope":"dag","namespace":"feed-sync","key":"cursor","changed":false,"foundPrevious":true,"previousVersion":3,"version":3,"hash":"a22883e93273fa52419f3f34bb7e1125f2cd14a1f32561e419adc15324916c4b","previous":{"id":3},"current":{"id":3}}
diff-missing={"operation":"diff","scope":"dag","namespace":"feed-sync","key":"fresh","changed":true,"foundPrevious":false,"version":1,"hash":"49a64717d5d4cb19952e6eac2946415cf6879adacf9908e7d872332d32c6e684","current":[1,2]}
diff-no-update={"operation":"diff","scope":"dag","namespace":"feed-sync","key":"other","changed":true,"foundPrevious":false,"current":null}
update={"operation":"update","scope":"dag","namespace":"feed-sync","key":"cursor","version":4,"hash":"4bdae00ea0d158846cf4f4d691b53d5d85557d374abf2b15525a76584a1721ba","created":false,"value":{"id":3,"more":true}}
rollback={"operation":"rollback","scope":"dag","namespace":"feed-sync","key":"cursor","version":5,"hash":"508e6bdc10a3d57fa5aa12dc01dcd7917de120b3bf1c51da7c069e631a7b345a","created":false,"value":{"id":1,"é":"\u003cü\u003e\u0026"}}
list={"operation":"list","scope":"dag","namespace":"feed-sync","entries":[{"scope":"dag","namespace":"feed-sync","key":"blob","version":1,"hash":"0af2e4f24c9bf81d376ad2dbb11edcc2d8f186ebeadf0b76934a6721de168deb","createdAt":"2026-01-01T00:00:01.5Z","updatedAt":"2026-01-01T00:00:01.5Z"},{"scope":"dag","namespace":"feed-sync","key":"cursor","version":5,"hash":"508e6bdc10a3d57fa5aa12dc01dcd7917de120b3bf1c51da7c069e631a7b345a","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:01.5Z"},{"scope":"dag","namespace":"feed-sync","key":"fresh","version":1,"hash":"49a64717d5d4cb19952e6eac2946415cf6879adacf9908e7d872332d32c6e684","createdAt":"2026-01-01T00:00:01.5Z","updatedAt":"2026-01-01T00:00:01.5Z"},{"scope":"dag","namespace":"feed-sync","key":"timed","version":1,"hash":"1a60b208ff491c3e2d21cdd5abb003e51e97b072efec59098863da45021de6a9","createdAt":"2026-01-01T00:00:01.5Z","updatedAt":"2026-01-01T00:00:01.5Z","expiresAt":"2026-01-01T00:01:01.5Z"}]}
list-prefix={"operation":"list","scope":"dag","namespace":"feed-sync","prefix":"cur","entries":[{"scope":"dag","namespace":"feed-sync","key":"cursor","version":5,"hash":"508e6bdc10a3d57fa5aa12dc01dcd7917de120b3bf1c51da7c069e631a7b345a","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:01.5Z"}]}
list-values={"operation":"list","scope":"dag","namespace":"feed-sync","entries":[{"scope":"dag","namespace":"feed-sync","key":"blob","version":1,"hash":"0af2e4f24c9bf81d376ad2dbb11edcc2d8f186ebeadf0b76934a6721de168deb","createdAt":"2026-01-01T00:00:01.5Z","updatedAt":"2026-01-01T00:00:01.5Z","value":"AAFiaW7/","contentType":"image/png","encoding":"base64"},{"scope":"dag","namespace":"feed-sync","key":"cursor","version":5,"hash":"508e6bdc10a3d57fa5aa12dc01dcd7917de120b3bf1c51da7c069e631a7b345a","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:01.5Z","value":{"id":1,"é":"\u003cü\u003e\u0026"}},{"scope":"dag","namespace":"feed-sync","key":"fresh","version":1,"hash":"49a64717d5d4cb19952e6eac2946415cf6879adacf9908e7d872332d32c6e684","createdAt":"2026-01-01T00:00:01.5Z","updatedAt":"2026-01-01T00:00:01.5Z","value":[1,2]},{"scope":"dag","namespace":"feed-sync","key":"timed","version":1,"hash":"1a60b208ff491c3e2d21cdd5abb003e51e97b072efec59098863da45021de6a9","createdAt":"2026-01-01T00:00:01.5Z","updatedAt":"2026-01-01T00:00:01.5Z","expiresAt":"2026-01-01T00:01:01.5Z","value":1.50}]}
list-entry={"scope":"dag","namespace":"feed-sync","key":"cursor","version":5,"hash":"508e6bdc10a3d57fa5aa12dc01dcd7917de120b3bf1c51da7c069e631a7b345a","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:01.5Z","value":{"id":1,"é":"\u003cü\u003e\u0026"}}
history={"operation":"history","scope":"dag","namespace":"feed-sync","key":"cursor","versions":[{"version":5,"hash":"508e6bdc10a3d57fa5aa12dc01dcd7917de120b3bf1c51da7c069e631a7b345a","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:01.5Z","updatedBy":{"dagName":"feed-sync","dagRunId":"run-1","stepName":"load"},"value":{"id":1,"é":"\u003cü\u003e\u0026"}},{"version":4,"hash":"4bdae00ea0d158846cf4f4d691b53d5d85557d374abf2b15525a76584a1721ba","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:01.5Z","updatedBy":{"dagName":"feed-sync","dagRunId":"run-1","stepName":"load"},"value":{"id":3,"more":true}},{"version":3,"hash":"a22883e93273fa52419f3f34bb7e1125f2cd14a1f32561e419adc15324916c4b","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:01.5Z","updatedBy":{"dagName":"feed-sync","dagRunId":"run-1","stepName":"load"},"value":{"id":3}},{"version":2,"hash":"9e7e65453739bbc64ba155eed18a37bd5fb1196c7f29ded1da660b94414d7ad8","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:01.5Z","updatedBy":{"dagName":"feed-sync","dagRunId":"run-1","stepName":"load"},"value":{"id":2}},{"version":1,"hash":"508e6bdc10a3d57fa5aa12dc01dcd7917de120b3bf1c51da7c069e631a7b345a","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z","updatedBy":{"dagName":"feed-sync","dagRunId":"run-1","stepName":"load"},"value":{"id":1,"é":"\u003cü\u003e\u0026"}}]}
history-ttl={"operation":"history","scope":"dag","namespace":"feed-sync","key":"timed","versions":[{"version":1,"hash":"1a60b208ff491c3e2d21cdd5abb003e51e97b072efec59098863da45021de6a9","createdAt":"2026-01-01T00:00:01.5Z","updatedAt":"2026-01-01T00:00:01.5Z","expiresAt":"2026-01-01T00:01:01.5Z","updatedBy":{"dagName":"feed-sync","dagRunId":"run-1","stepName":"load"}}]}
delete={"operation":"delete","scope":"dag","namespace":"feed-sync","key":"fresh","deleted":true}
delete-missing={"operation":"delete","scope":"dag","namespace":"feed-sync","key":"fresh","deleted":false}
history-deleted={"operation":"history","scope":"dag","namespace":"feed-sync","key":"fresh","versions":[{"version":1,"hash":"49a64717d5d4cb19952e6eac2946415cf6879adacf9908e7d872332d32c6e684","deleted":true,"createdAt":"2026-01-01T00:00:01.5Z","updatedAt":"2026-01-01T00:00:01.5Z","updatedBy":{"dagName":"feed-sync","dagRunId":"run-1","stepName":"load"}},{"version":1,"hash":"49a64717d5d4cb19952e6eac2946415cf6879adacf9908e7d872332d32c6e684","createdAt":"2026-01-01T00:00:01.5Z","updatedAt":"2026-01-01T00:00:01.5Z","updatedBy":{"dagName":"feed-sync","dagRunId":"run-1","stepName":"load"},"value":[1,2]}]}
history-item={"version":1,"hash":"49a64717d5d4cb19952e6eac2946415cf6879adacf9908e7d872332d32c6e684","deleted":true,"createdAt":"2026-01-01T00:00:01.5Z","updatedAt":"2026-01-01T00:00:01.5Z","updatedBy":{"dagName":"feed-sync","dagRunId":"run-1","stepName":"load"}}
keyspaces={"operation":"keyspaces","keyspaces":[{"scope":"custom","namespace":"ns&co","entries":1,"updatedAt":"2026-01-01T00:00:01.5Z"},{"scope":"dag","namespace":"feed-sync","entries":3,"updatedAt":"2026-01-01T00:00:01.5Z"}]}
keyspaces-page={"operation":"keyspaces","scope":"dag","keyspaces":[{"scope":"dag","namespace":"feed-sync","entries":3,"updatedAt":"2026-01-01T00:00:01.5Z"}]}
keyspaces-next={"operation":"keyspaces","keyspaces":[{"scope":"custom","namespace":"ns&co","entries":1,"updatedAt":"2026-01-01T00:00:01.5Z"}],"next":"custom/ns&co"}
transaction={"operation":"transaction","scope":"dag","namespace":"feed-sync","results":[{"index":0,"operation":"set","key":"a","version":1,"hash":"5041bf1f713df204784353e82f6a4a535931cb64f1f4b4a5aeaffcb720918b22","created":true},{"index":1,"operation":"set","key":"blob2","version":1,"hash":"4a60bf7d4bc1e485744cf7e8d0860524752fca1ce42331be7c439fd23043f151","created":true},{"index":2,"operation":"delete","key":"cursor","deleted":true},{"index":3,"operation":"delete","key":"never","deleted":false}]}
transaction-empty={"operation":"transaction","scope":"dag","namespace":"feed-sync","results":[]}
lease-acquire={"operation":"lease","action":"acquire","name":"nightly","holder":"me","token":1,"expiresAt":"2026-01-01T00:00:31.5Z"}
lease-renew={"operation":"lease","action":"renew","name":"nightly","holder":"me","token":1,"expiresAt":"2026-01-01T00:00:31.75Z"}
lease-get={"operation":"lease","action":"get","name":"nightly","holder":"me","token":1,"expiresAt":"2026-01-01T00:00:31.75Z"}
leases={"operation":"leases","leases":[{"operation":"lease","action":"get","name":"nightly","holder":"me","token":1,"expiresAt":"2026-01-01T00:00:31.75Z"}],"next":null}
leases-next={"operation":"leases","leases":[],"next":"nightly"}
lease-release={"operation":"lease","action":"release","name":"nightly","holder":"me","token":1,"expiresAt":"2026-01-01T00:00:01.75Z","released":true}
lease-release-again={"operation":"lease","action":"release","name":"nightly","holder":"me","token":1,"expiresAt":"2026-01-01T00:00:01.75Z","released":false}
watch={"operation":"watch","scope":"dag","namespace":"feed-sync","prefix":"","events":[{"key":"a","event":"created","previousVersion":0,"version":1,"hash":"5041bf1f713df204784353e82f6a4a535931cb64f1f4b4a5aeaffcb720918b22","deleted":false,"value":{"x":1}},{"key":"blob","event":"created","previousVersion":0,"version":1,"hash":"0af2e4f24c9bf81d376ad2dbb11edcc2d8f186ebeadf0b76934a6721de168deb","deleted":false,"value":"AAFiaW7/","contentType":"image/png","encoding":"base64"},{"key":"blob2","event":"created","previousVersion":0,"version":1,"hash":"4a60bf7d4bc1e485744cf7e8d0860524752fca1ce42331be7c439fd23043f151","deleted":false,"value":"eno=","contentType":"application/octet-stream","encoding":"base64"},{"key":"timed","event":"created","previousVersion":0,"version":1,"hash":"1a60b208ff491c3e2d21cdd5abb003e51e97b072efec59098863da45021de6a9","deleted":false,"value":1.50}],"timedOut":false}
watch-key={"operation":"watch","scope":"dag","namespace":"feed-sync","key":"a","events":[{"key":"a","event":"created","previousVersion":0,"version":1,"hash":"5041bf1f713df204784353e82f6a4a535931cb64f1f4b4a5aeaffcb720918b22","deleted":false}],"timedOut":false}
watch-event-a={"operation":"watch","scope":"dag","namespace":"feed-sync","key":"a","event":"created","previousVersion":0,"version":1,"hash":"5041bf1f713df204784353e82f6a4a535931cb64f1f4b4a5aeaffcb720918b22","deleted":false,"value":{"x":1}}
watch-event-blob={"operation":"watch","scope":"dag","namespace":"feed-sync","key":"blob","event":"created","previousVersion":0,"version":1,"hash":"0af2e4f24c9bf81d376ad2dbb11edcc2d8f186ebeadf0b76934a6721de168deb","deleted":false,"value":"AAFiaW7/","contentType":"image/png","encoding":"base64"}
watch-event-blob2={"operation":"watch","scope":"dag","namespace":"feed-sync","key":"blob2","event":"created","previousVersion":0,"version":1,"hash":"4a60bf7d4bc1e485744cf7e8d0860524752fca1ce42331be7c439fd23043f151","deleted":false,"value":"eno=","contentType":"application/octet-stream","encoding":"base64"}
watch-event-timed={"operation":"watch","scope":"dag","namespace":"feed-sync","key":"timed","event":"created","previousVersion":0,"version":1,"hash":"1a60b208ff491c3e2d21cdd5abb003e51e97b072efec59098863da45021de6a9","deleted":false,"value":1.50}
watch-deleted={"operation":"watch","scope":"dag","namespace":"feed-sync","key":"cursor","events":[{"key":"cursor","event":"deleted","previousVersion":5,"version":0,"deleted":true}],"timedOut":false}
watch-event-deleted={"operation":"watch","scope":"dag","namespace":"feed-sync","key":"cursor","event":"deleted","previousVersion":5,"version":0,"deleted":true}
watch-timed-out={"operation":"watch","scope":"dag","namespace":"feed-sync","key":"k","events":[],"timedOut":true}
keyspace-delete={"operation":"deleteKeyspace","scope":"custom","namespace":"ns&co","deleted":1}
purge={"operation":"purge","purged":3}
"""


def _golden() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in GOLDEN.strip().splitlines())
    return {name: line for name, line in pairs}


def _one_of_each(store: StateStore, clock: ManualClock) -> Iterator[tuple[str, Any]]:
    """(name, result) for every kind of result, in an order that builds on itself."""
    s = store
    yield "set-created", s.set("cursor", {"id": 1, "é": "<ü>&"})
    clock.advance(1.5)
    yield "set-updated", s.set("cursor", {"id": 2})
    yield "set-binary", s.set("blob", Blob(b"\x00\x01bin\xff", "image/png"))
    yield "set-ttl", s.set("timed", RawJSON("1.50"), ttl=60)
    yield "set-custom", s.set("k<1>", "v", scope="custom", namespace="ns&co")
    yield "get", s.get("cursor")
    yield "get-ttl", s.get("timed")
    yield "get-binary", s.get("blob")
    yield "get-missing", s.get("nope")
    yield "get-missing-default-null", s.get("nope", default=None)
    yield "get-missing-default", s.get("nope", default={"last_id": 0})
    yield "get-past-version", s.get("cursor", version=1)
    yield "diff-changed", s.diff("cursor", {"id": 3})
    yield "diff-unchanged", s.diff("cursor", {"id": 3})
    yield "diff-missing", s.diff("fresh", [1, 2])
    yield "diff-no-update", s.diff("other", None, update=False)
    yield "update", s.update("cursor", merge={"more": True})
    yield "rollback", s.rollback("cursor", 1)
    yield "list", s.list()
    yield "list-prefix", s.list("cur")
    yield "list-values", s.list(include_values=True)
    yield "list-entry", s.list(include_values=True).entries[1]
    yield "history", s.history("cursor", include_values=True)
    yield "history-ttl", s.history("timed")
    yield "delete", s.delete("fresh")
    yield "delete-missing", s.delete("fresh")
    yield "history-deleted", s.history("fresh", include_values=True)
    yield "history-item", s.history("fresh", include_values=True).versions[0]
    yield "keyspaces", s.keyspaces()
    yield "keyspaces-page", s.keyspaces(scope="dag", limit=1)
    yield "keyspaces-next", s.keyspaces(limit=1)
    operations = [
        {"op": "set", "key": "a", "value": {"x": 1}},
        {"op": "set", "key": "blob2", "value": Blob(b"zz")},
        {"op": "delete", "key": "cursor"},
        {"op": "delete", "key": "never"},
    ]
    yield "transaction", s.transaction(operations)
    yield "transaction-empty", s.transaction([])
    lease = s.acquire_lease("nightly", 30, holder="me")
    yield "lease-acquire", lease
    clock.advance(0.25)
    yield "lease-renew", s.renew_lease(lease)
    yield "lease-get", s.get_lease("nightly")
    yield "leases", results_beyond.LeasesResult(s.list_leases())
    yield "leases-next", results_beyond.LeasesResult([], "nightly")
    yield "lease-release", s.release_lease(lease)
    yield "lease-release-again", s.release_lease(lease)
    yield "watch", s.watch(prefix="", after_version=0, include_values=True, timeout=1)
    yield "watch-key", s.watch("a", after_version=0, timeout=1)
    watched = s.watch(prefix="", after_version=0, include_values=True, timeout=1)
    for event in watched.events:
        yield f"watch-event-{event.key}", event
    yield "watch-deleted", s.watch("cursor", after_version=5, timeout=1)
    yield "watch-event-deleted", s.watch("cursor", after_version=5, timeout=1).events[0]
    yield "watch-timed-out", WatchResult(watched.keyspace, "k", None, [])
    yield "keyspace-delete", s.delete_keyspace("custom", "ns&co")
    yield "purge", PurgeResult(3)  # the CLI builds it from purge_expired's count


@pytest.fixture(params=["memory", "sqlite"])
def rendered(request: pytest.FixtureRequest, tmp_path: Path) -> list[tuple[str, Any]]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 's.db'}"
    clock = ManualClock()
    context = RunContext(dag="feed-sync", root_dag="nightly", run_id="run-1", step="load")
    with open_store(url, context=context, clock=clock) as store:
        return list(_one_of_each(store, clock))


def test_the_renderer_prints_what_to_json_printed(rendered: list[tuple[str, Any]]) -> None:
    golden = _golden()
    assert [name for name, _ in rendered] == list(golden)
    for name, result in rendered:
        line = golden[name]
        assert envelope_json(result) == line, name
        assert dumps_envelope(envelope(result)) == line, name
        assert envelope_data(result) == json.loads(line), name
        # The conveniences on the results say the same.
        assert dumps_envelope(result.to_dict()) == line, name
        if hasattr(result, "to_json"):
            assert result.to_json() == line, name
            assert result.as_data() == json.loads(line), name


def test_a_stored_json_value_is_embedded_as_its_normalized_bytes() -> None:
    keyspace = open_store("memory://", context=RunContext(dag="d")).keyspace()
    stored = StoredValue(b'{"n":1.50,"s":"\\u003c"}')
    result = GetResult(keyspace, "k", True, 1, "h", stored)
    assert envelope(result)["value"] == EmbeddedJSON('{"n":1.50,"s":"\\u003c"}')
    assert envelope_json(result).endswith(',"value":{"n":1.50,"s":"\\u003c"}}')
    assert envelope_data(result)["value"] == {"n": 1.5, "s": "<"}
    # The data keeps its own facts; the envelope is one rendering of them.
    assert (result.found, result.value) == (True, {"n": 1.5, "s": "<"})


def test_several_embedded_parts_go_back_in_their_places() -> None:
    data = {
        "a": EmbeddedJSON("[1.50]"),
        "b": [EmbeddedJSON("{}"), "\u0000 0\u0000", EmbeddedJSON('"\\u0000"')],
        "c": "text",
    }
    line = dumps_envelope(data)
    assert line == '{"a":[1.50],"b":[{},"\\u0000 0\\u0000","\\u0000"],"c":"text"}'
    assert dumps_envelope({"a": "no part"}) == '{"a":"no part"}'


# -- every result has a renderer ------------------------------------------------------------


def _result_classes() -> set[type[Any]]:
    """Every NamedTuple the result modules define, but StoredValue: a value, rendered as
    part of the results that hold one."""
    found = set()
    for module in RESULT_MODULES:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, tuple)
                and value.__module__ == module.__name__
                and value is not StoredValue
            ):
                found.add(value)
    return found


def test_every_result_class_has_a_renderer() -> None:
    classes = _result_classes()
    assert len(classes) == 16  # a new result must be added here and to the renderer
    missing = []
    for kind in classes:
        try:
            renderer(kind)
        except TypeError:
            missing.append(kind.__name__)
    assert missing == [], f"no envelope renderer for {missing} in statebox.core.envelope"
    # ... and the type of what the renderer takes names every one of them (a string: the
    # results beyond Dagu's are not loaded on a get's path).
    named = {name.strip() for name in envelope_module.Result.split("|")}
    assert named == {kind.__name__ for kind in classes}


def test_a_subclass_is_rendered_as_its_base_and_anything_else_is_refused() -> None:
    class Purged(PurgeResult):
        pass

    assert envelope_json(Purged(2)) == '{"operation":"purge","purged":2}'
    with pytest.raises(TypeError, match="no Dagu envelope for dict"):
        envelope({"operation": "get"})  # type: ignore[arg-type]


# -- no result builds an envelope itself ------------------------------------------------------

_CONVENIENCES = {"to_dict", "to_json", "as_data"}
# Whatever building an envelope takes: the renderer's tools.
_RENDERING_NAMES = {"format_timestamp", "dumps_envelope", "b64encode", "EmbeddedJSON"}


def _parsed(module: Any) -> ast.Module:
    return ast.parse(Path(module.__file__).read_text(encoding="utf-8"))


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        return body[1:]
    return body


def _is_delegation(method: ast.FunctionDef) -> bool:
    """``return _<name>(self)``: nothing else."""
    match _without_docstring(method.body):
        case [
            ast.Return(
                value=ast.Call(func=ast.Name(id=helper), args=[ast.Name(id="self")], keywords=[])
            )
        ]:
            return bool(helper == f"_{method.name}")
    return False


@pytest.mark.parametrize("module", RESULT_MODULES, ids=lambda m: m.__name__)
def test_no_result_class_builds_an_envelope(module: Any) -> None:
    tree = _parsed(module)
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    assert classes
    for cls in classes:
        for method in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            where = f"{module.__name__}.{cls.name}.{method.name}"
            if method.name in _CONVENIENCES:
                assert _is_delegation(method), f"{where} must only delegate to the renderer"
            for node in ast.walk(method):
                assert not isinstance(node, (ast.Dict, ast.DictComp)), f"{where} builds a dict"
    # Nor does anything else in the module: the renderer's tools are not even named.
    named = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    named |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert named & _RENDERING_NAMES == set()


def test_the_conveniences_hand_the_result_to_the_renderer() -> None:
    """``results._to_dict`` and friends: import the renderer's function, return its call."""
    helpers = {
        node.name: node
        for node in _parsed(results).body
        if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in _CONVENIENCES
    }
    expected = {"_to_dict": "envelope", "_to_json": "envelope_json", "_as_data": "envelope_data"}
    assert set(helpers) == set(expected)
    for name, function in expected.items():
        match helpers[name].body:
            case [
                ast.ImportFrom(module="envelope", level=1, names=[ast.alias(name=imported)]),
                ast.Return(value=ast.Call(func=ast.Name(id=called), args=[ast.Name()])),
            ]:
                assert imported == called == function
            case _:
                pytest.fail(f"results.{name} must only call envelope.{function}")
