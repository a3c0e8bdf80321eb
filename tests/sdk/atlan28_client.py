"""An app's use of the Atlan SDK 2.8.x state store and credentials, run unmodified.

Runs inside the ``atlan-2.8`` environment (scripts/sdk-envs), never in statebox's own:
``.cache/sdk-envs/atlan-2.8/bin/python tests/sdk/atlan28_client.py COMMAND [ARGS]``.
Everything goes through the SDK's public API (``application_sdk.services.statestore.
StateStore``, ``application_sdk.services.secretstore.SecretStore``), which talks to Dapr
over gRPC (the object-store binding ``objectstore``, the secret stores, the metadata) at
``DAPR_GRPC_PORT`` after waiting on ``DAPR_HTTP_PORT``'s ``/v1.0/healthz/outbound``; the
test points both at ``statebox serve --dapr-grpc-port/--dapr-http-port``. The SDK reads
its settings from the environment at import time: ``ATLAN_APPLICATION_NAME``,
``ATLAN_DEPLOYMENT_NAME`` (``local``: credentials are saved as state and secrets are not
fetched; anything else: ``get_credentials`` fetches the secret store), ``ATLAN_TEMPORARY_PATH``
(where ``save_state`` writes its local copy), ``DAPR_API_TOKEN``.

The result is one JSON object, written to the file ``--out`` names (the SDK logs to stdout
too) and printed; the exit code is 1 when a call failed (the JSON then has ``"error"``).

Commands:
  roundtrip --id W                  save_state_object, save_state x2, get_state (WORKFLOWS),
                                    save_state_object / get_state (CREDENTIALS),
                                    SecretStore.save_secret + get_credentials (local only)
  get --id ID --type workflows|credentials
  credentials --guid G [--deployment-key K]
                                    SecretStore.get_credentials (and get_deployment_secret)
  save-field --id W --key K --value JSON [--barrier DIR --name NAME]
  concurrent --id W --count N       N processes (separate temporary paths, as N workers
                                    would have) each save_state one field at the same moment
                                    (all imported, then released together); then get_state:
                                    which fields survived
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any


def _sdk() -> Any:
    # Imported here: the SDK reads its environment at import time.
    from application_sdk.services import secretstore, statestore

    return statestore, secretstore


def _state_type(name: str) -> Any:
    statestore, _ = _sdk()
    return statestore.StateType(name)


async def roundtrip(args: argparse.Namespace) -> dict[str, Any]:
    statestore, secretstore = _sdk()
    store, types = statestore.StateStore, statestore.StateType
    merged = await store.save_state_object(
        id=args.id,
        value={"workflow_id": args.id, "status": "running", "progress": 0, "args": {"n": 1}},
        type=types.WORKFLOWS,
    )
    await store.save_state(key="progress", value=75, id=args.id, type=types.WORKFLOWS)
    await store.save_state(key="status", value="done", id=args.id, type=types.WORKFLOWS)
    merged2 = await store.save_state_object(
        id=args.id, value={"output_path": "/data/out"}, type=types.WORKFLOWS
    )
    workflow = await store.get_state(args.id, types.WORKFLOWS)
    missing = await store.get_state(args.id + "-missing", types.WORKFLOWS)
    result: dict[str, Any] = {
        "path": statestore.build_state_store_path(args.id, types.WORKFLOWS),
        "first_merge": merged,
        "second_merge": merged2,
        "workflow": workflow,
        "missing": missing,
    }
    if os.environ.get("ATLAN_DEPLOYMENT_NAME", "local") == "local":
        config = {"host": "db.example.com", "port": 5432, "username": "app", "password": "pw-sdk28"}
        guid = await secretstore.SecretStore.save_secret(config)
        result["credential_guid"] = guid
        result["credentials"] = await secretstore.SecretStore.get_credentials(guid)
        result["credential_state"] = await store.get_state(guid, types.CREDENTIALS)
    return result


async def get(args: argparse.Namespace) -> dict[str, Any]:
    statestore, _ = _sdk()
    state = await statestore.StateStore.get_state(args.id, _state_type(args.type))
    return {"state": state}


async def credentials(args: argparse.Namespace) -> dict[str, Any]:
    _, secretstore = _sdk()
    result: dict[str, Any] = {
        "credentials": await secretstore.SecretStore.get_credentials(args.guid)
    }
    if args.deployment_key:
        # is_component_registered (GetMetadata) first, then GetSecret on the deployment store.
        result["deployment_secret"] = secretstore.SecretStore.get_deployment_secret(
            args.deployment_key
        )
    return result


async def save_field(args: argparse.Namespace) -> dict[str, Any]:
    statestore, _ = _sdk()
    if args.barrier:
        # Ready (the SDK imported), then wait for the others: all save at the same moment.
        open(os.path.join(args.barrier, f"ready-{args.name}"), "w").close()
        go = os.path.join(args.barrier, "go")
        deadline = time.time() + 120
        while not os.path.exists(go) and time.time() < deadline:
            time.sleep(0.002)
    started = time.time()
    await statestore.StateStore.save_state(
        key=args.key, value=json.loads(args.value), id=args.id, type=_state_type("workflows")
    )
    return {"key": args.key, "started": started, "seconds": time.time() - started}


async def concurrent(args: argparse.Namespace) -> dict[str, Any]:
    """N workers (processes, each with its own temporary path) save one field each."""
    barrier = tempfile.mkdtemp(prefix="sdk28-barrier-")
    results = tempfile.mkdtemp(prefix="sdk28-results-")
    children = []
    for i in range(args.count):
        env = {**os.environ, "ATLAN_TEMPORARY_PATH": tempfile.mkdtemp(prefix=f"sdk28-w{i}-")}
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "save-field",
            "--id",
            args.id,
            "--key",
            f"field{i:02d}",
            "--value",
            json.dumps(i),
            "--barrier",
            barrier,
            "--name",
            str(i),
            "--out",
            os.path.join(results, f"{i}.json"),
        ]
        children.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
        )
    deadline = time.time() + 120
    while len(os.listdir(barrier)) < args.count and time.time() < deadline:
        if any(child.poll() is not None for child in children):
            break
        time.sleep(0.01)
    open(os.path.join(barrier, "go"), "w").close()
    calls = []
    for i, child in enumerate(children):
        _, err = child.communicate(timeout=300)
        path = os.path.join(results, f"{i}.json")
        answer = {"error": "no result"}
        if os.path.exists(path):
            with open(path) as file:
                answer = json.load(file)
        calls.append({"exit": child.returncode, **answer, "stderr_tail": err[-400:]})
    statestore, _ = _sdk()
    state = await statestore.StateStore.get_state(args.id, _state_type("workflows"))
    wanted = {f"field{i:02d}": i for i in range(args.count)}
    return {
        "calls": len(calls),
        "failed_calls": [c for c in calls if c["exit"] != 0],
        "state": state,
        "survived": sorted(k for k, v in wanted.items() if state.get(k) == v),
        "lost": sorted(k for k, v in wanted.items() if state.get(k) != v),
    }


COMMANDS = {
    "roundtrip": roundtrip,
    "get": get,
    "credentials": credentials,
    "save-field": save_field,
    "concurrent": concurrent,
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--id")
    parser.add_argument("--type", default="workflows")
    parser.add_argument("--guid")
    parser.add_argument("--deployment-key")
    parser.add_argument("--key")
    parser.add_argument("--value")
    parser.add_argument("--barrier")
    parser.add_argument("--name")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--out", help="write the JSON result to this file")
    args = parser.parse_args()
    code = 0
    try:
        result = asyncio.run(COMMANDS[args.command](args))
    except Exception as exc:
        traceback.print_exc()
        result, code = {"error": f"{type(exc).__name__}: {exc}"}, 1
    text = json.dumps(result, default=str)
    if args.out:
        with open(args.out, "w") as out:
            out.write(text)
    print(text, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
