"""The Atlan SDK 3's own Dapr components folder, as its wheel ships it, read by
``--dapr-components``: in the SDK step (``scripts/sdk-tests``), whose environment
``scripts/sdk-envs`` builds — it fails, never skips, when that environment is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from statebox.core.model import Keyspace
from statebox.dapr.components import load_components

from .test_atlan_sdks import ENVS

pytestmark = pytest.mark.sdk


def _shipped_components() -> Path:
    found = sorted(ENVS.glob("atlan-3/lib/python3*/site-packages/application_sdk/components"))
    assert found, f"no Atlan SDK 3 environment under {ENVS}: run scripts/sdk-envs"
    return found[0]


def test_the_atlan_sdk_components_folder(tmp_path: Path) -> None:
    folder = tmp_path / "components"
    shutil.copytree(_shipped_components(), folder)
    components = load_components(folder)
    kinds = {name: c.kind for name, c in components.served.items()}
    assert kinds == {
        "statestore": "state",
        "objectstore": "binding",
        "eventstore": "binding",
        "deployment-secret-store": "secretstore",
    }
    # pubsub.in-memory is reported; the Configuration document, README.md and the
    # *.yaml.example files are not components.
    assert [(c.name, c.type) for c in components.unserved] == [("pubsub", "pubsub.in-memory")]
    assert components.unserved[0].why_not_served() == "statebox does not serve pub/sub"
    assert sorted(components.secret_keyspaces()) == [
        Keyspace("custom", "dapr-deployment-secret-store"),
        Keyspace("custom", "dapr-eventstore-credentials"),
        Keyspace("custom", "dapr-objectstore-credentials"),
    ]
    notices = components.notices()
    assert any("pubsub" in n and "not served" in n for n in notices)
    assert not any("configuration" in n.lower() and "not served" in n for n in notices)
