"""A Dapr route's failure that statebox withholds from clients (the store unavailable, a
corrupt record, the server's secret key) is answered in Dapr's body with statebox's
generic words and a request id, and the server's log has the details under that id:
the Dapr face's translated error is disclosed by the statebox error it stands for."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from .dapr_http_support import SECRETSTORE_YAML
from .server_util import running_server
from .test_atlan_api import new_secret_key


def test_a_secret_sealed_with_another_key_is_withheld_and_logged(tmp_path: Path) -> None:
    folder = tmp_path / "components"
    folder.mkdir()
    (folder / "secretstore.yaml").write_text(SECRETSTORE_YAML)
    store = f"sqlite:///{tmp_path / 'x.db'}"
    server_key, other_key = new_secret_key(), new_secret_key()
    with running_server(
        store,
        via_cli=True,
        env={"STATEBOX_SECRET_KEY": server_key},
        args=["--dapr-components", str(folder)],
    ) as server:
        # Sealed by a process with another key: the server cannot open it.
        wrote = subprocess.run(
            [
                *(sys.executable, "-m", "statebox.cli", "set"),
                *("--scope", "custom", "--namespace", "dapr-secretstore"),
                *("db", '{"password": "pw-41"}'),
            ],
            env={**os.environ, "STATEBOX_STORE": store, "STATEBOX_SECRET_KEY": other_key},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert wrote.returncode == 0, wrote.stderr
        answer = httpx.get(f"{server.url}/v1.0/secrets/secretstore/db", timeout=30)
        assert answer.status_code == 500, answer.text
        body = answer.json()
        assert body["errorCode"] == "ERR_SECRET_GET", body
        request_id = answer.headers["x-request-id"]
        assert f"request id {request_id}" in body["message"], body
        assert "cannot open a secret value" in body["message"], body  # statebox's words
        assert "pw-41" not in answer.text and str(tmp_path) not in answer.text
        log = server.log_text()
    # The details (the key error's own message) are in the log under the same id.
    line = next(line for line in log.splitlines() if request_id in line)
    assert re.search(r"secret_key", line), line
