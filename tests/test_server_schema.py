"""A schema-driven fuzz run: schemathesis against the OpenAPI document the server serves.

Every operation gets boundary values (the coverage phase) and random valid and invalid
requests (fuzzing), against a real server over a real SQLite file. The run passes only
if no answer is a 5xx and every answer (status, content type, headers, body) matches
the schema. Bounded: three examples per operation, a fixed seed, about 15 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .server_util import ROOT, running_server

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def test_no_answer_is_a_server_error_or_breaks_the_schema(tmp_path: Path) -> None:
    # --max-wait keeps long polls short; the SSE stream, which never ends by design, is
    # left out (its own test reads it).
    store = f"sqlite:///{tmp_path / 'fuzz.db'}?synchronous=OFF"
    with running_server(store, args=["--max-wait", "0.2"]) as server:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                CHECKS,
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "3",
                "--seed",
                "20261101",
                "--no-shrink",
                "--workers",
                "1",
                "--request-timeout",
                "20",
                "--exclude-path",
                "/v1/events/{scope}/{namespace}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
        )
        log = server.log_text()
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:] + log[-3000:]
    assert "passed" in done.stdout
