"""Dapr component files (statebox.dapr.components): what is served, what is reported, what
is refused — read from real files: the Atlan seed's statestore.yaml as it is documented,
the Atlan SDK 3's own components folder is read in the SDK step
(tests/sdk/test_atlan_components.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from statebox.core.errors import ConfigurationError
from statebox.core.model import Keyspace
from statebox.dapr.components import Component, Components, load_components
from statebox.dapr.errors import DaprError

from .dapr_http_support import STATESTORE_YAML


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def component(name: str, type_: str, metadata: str = "", extra: str = "") -> str:
    return (
        f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n"
        f"spec:\n  type: {type_}\n  version: v1\n{metadata}{extra}"
    )


def test_the_seed_statestore_is_served_in_its_keyspace(tmp_path: Path) -> None:
    write(tmp_path, "statestore.yaml", STATESTORE_YAML)
    components = load_components(tmp_path)
    store = components.state_store("statestore")
    assert (store.name, store.type, store.version, store.kind) == (
        "statestore",
        "state.sqlite",
        "v1",
        "state",
    )
    assert store.keyspace == Keyspace("custom", "dapr-statestore")
    assert store.metadata == {"connectionString": "./local/dapr/statestore.db"}
    assert store.source == str(tmp_path / "statestore.yaml")
    assert components.unserved == []
    assert components.secret_keyspaces() == []
    (notice,) = components.notices()
    assert "statestore" in notice and "connectionString is ignored" in notice
    assert "namespace dapr-statestore" in notice


def test_only_component_documents_of_yaml_files_are_read(tmp_path: Path) -> None:
    many = "\n---\n".join(
        [
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: conf\n"
            "spec:\n  features: []\n",
            component("kv", "state.redis"),
            "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: sub\n",
            "",
            component("vault", "secretstores.local.file"),
        ]
    )
    write(tmp_path, "all.yml", many)
    write(tmp_path, "ignored.yaml.example", component("nope", "state.sqlite"))
    write(tmp_path, "README.md", component("nope2", "state.sqlite"))
    write(tmp_path / "sub", "deeper.yaml", component("nope3", "state.sqlite"))
    write(tmp_path, "Upper.YAML", component("upper", "bindings.aws.s3"))
    components = load_components(tmp_path)
    assert sorted(components.served) == ["kv", "upper", "vault"]
    assert components.served["upper"].kind == "binding"


def test_metadata_values_are_text_and_secret_refs_are_reported(tmp_path: Path) -> None:
    metadata = (
        "  metadata:\n"
        "    - name: forcePathStyle\n      value: true\n"
        "    - name: port\n      value: 5432\n"
        "    - name: secretKey\n      secretKeyRef:\n        name: S3_KEY\n        key: S3_KEY\n"
    )
    write(tmp_path, "s3.yaml", component("objectstore", "bindings.aws.s3", metadata))
    components = load_components(tmp_path)
    store = components.binding("objectstore")
    assert store.metadata == {"forcePathStyle": "true", "port": "5432"}
    assert store.secret_refs == ("secretKey",)
    assert any("secretKey is a secretKeyRef" in n for n in components.notices())


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("kind: Component\n  bad: [indent\n", "not valid YAML"),
        ("apiVersion: dapr.io/v1alpha1\nkind: Component\nspec:\n  type: state.x\n", "name"),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: s\nspec: {}\n",
            "spec.type",
        ),
        (component("a/b", "state.sqlite"), "invalid component name"),
        (component('".."', "state.sqlite"), "invalid component name"),
        (component('"padded "', "state.sqlite"), "invalid component name"),
        (
            "a: &a [1,1,1,1,1,1,1,1,1,1]\n"
            + "".join(
                f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                for p, c in zip("abcdef", "bcdefg", strict=True)
            ),
            "aliases",
        ),
    ],
)
def test_refused_files_name_themselves(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ConfigurationError) as caught:
        load_components(tmp_path)
    assert str(path) in caught.value.message and words in caught.value.message


def test_duplicate_names_name_both_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", component("statestore", "state.sqlite"))
    second = write(tmp_path, "b.yaml", component("statestore", "state.redis"))
    with pytest.raises(ConfigurationError) as caught:
        load_components(tmp_path)
    assert str(first) in caught.value.message and str(second) in caught.value.message


def test_duplicate_names_are_refused_for_unserved_components_too(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", component("events", "pubsub.redis"))
    second = write(tmp_path, "b.yaml", component("events", "pubsub.kafka"))
    with pytest.raises(ConfigurationError, match="two Dapr components are named") as caught:
        load_components(tmp_path)
    assert str(first) in caught.value.message and str(second) in caught.value.message


def test_two_components_may_not_share_a_keyspace(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", component("files", "bindings.localstorage"))
    write(tmp_path, "b.yaml", component("files-credentials", "state.sqlite"))
    with pytest.raises(ConfigurationError, match="dapr-files-credentials"):
        load_components(tmp_path)


def test_a_missing_directory_is_refused_and_none_is_no_components(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a directory"):
        load_components(tmp_path / "missing")
    assert load_components(None) == Components({}, [])


def test_components_dapr_would_not_load_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAMESPACE", "prod")
    write(tmp_path, "a.yaml", component("mine", "state.sqlite", extra="scopes:\n  - other\n"))
    write(tmp_path, "b.yaml", component("ours", "state.sqlite", extra="scopes:\n  - app1\n"))
    keyprefix = "  metadata:\n    - name: KeyPrefix\n      value: a||b\n"
    write(tmp_path, "c.yaml", component("bad-prefix", "state.sqlite", keyprefix))
    staged = component("staged", "state.sqlite").replace(
        "  name: staged\n", "  name: staged\n  namespace: staging\n"
    )
    write(tmp_path, "d.yaml", staged)
    components = load_components(tmp_path, app_id="app1")
    assert sorted(components.served) == ["ours"]
    why = {c.name: c.why_not_served() for c in components.unserved}
    assert "scoped to the apps other" in (why["mine"] or "")
    assert "contains '||'" in (why["bad-prefix"] or "")
    assert "namespace staging" in (why["staged"] or "")


def _dapr_error(work: object) -> DaprError:
    assert callable(work)
    with pytest.raises(DaprError) as caught:
        work()
    return caught.value


def test_lookups_answer_as_dapr_does(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", component("statestore", "state.sqlite"))
    write(tmp_path, "b.yaml", component("pubsub", "pubsub.redis"))
    write(tmp_path, "c.yaml", component("kafka", "bindings.kafka"))
    components = load_components(tmp_path)

    missing = _dapr_error(lambda: components.state_store("other"))
    assert (missing.code, missing.http_status, missing.grpc_status) == (
        "ERR_STATE_STORE_NOT_FOUND",
        400,
        "INVALID_ARGUMENT",
    )
    assert missing.message == "state store other is not found"
    unserved = _dapr_error(lambda: components.state_store("pubsub"))
    assert unserved.code == "ERR_STATE_STORE_NOT_FOUND"
    assert unserved.message.startswith(
        "component pubsub (type pubsub.redis) is declared but statebox does not serve it"
    )
    kafka = _dapr_error(lambda: components.binding("kafka"))
    assert (kafka.code, kafka.http_status) == ("ERR_INVOKE_OUTPUT_BINDING", 500)
    assert "component kafka (type bindings.kafka) is declared but" in kafka.message
    nothing = _dapr_error(lambda: components.binding("objectstore"))
    assert nothing.message == (
        "error invoking output binding objectstore: couldn't find output binding objectstore"
    )
    no_secrets = _dapr_error(lambda: components.secret_store("secretstore"))
    assert (no_secrets.code, no_secrets.http_status, no_secrets.grpc_status) == (
        "ERR_SECRET_STORES_NOT_CONFIGURED",
        500,
        "FAILED_PRECONDITION",
    )
    none = _dapr_error(lambda: Components({}, []).state_store("statestore"))
    assert (none.code, none.http_status, none.grpc_status) == (
        "ERR_STATE_STORE_NOT_CONFIGURED",
        500,
        "FAILED_PRECONDITION",
    )


def test_a_missing_secret_store_is_401_as_in_dapr(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", component("secretstore", "secretstores.local.env"))
    components = load_components(tmp_path)
    assert components.secret_store("secretstore").kind == "secretstore"
    error = _dapr_error(lambda: components.secret_store("vault"))
    assert (error.code, error.http_status, error.grpc_status) == (
        "ERR_SECRET_STORE_NOT_FOUND",
        401,
        "INVALID_ARGUMENT",
    )
    assert error.message == "failed finding secret store with key vault"


def test_kinds_of_types() -> None:
    def kind(type_: str) -> str | None:
        return Component("n", type_, "v1", {}, "f").kind

    assert kind("state.postgresql") == "state"
    assert kind("secretstores.hashicorp.vault") == "secretstore"
    assert kind("bindings.azure.blobstorage") == "binding"
    assert kind("bindings.http") is None
    assert kind("configuration.redis") is None
    assert "does not know" in (Component("n", "weird", "", {}, "f").why_not_served() or "")
