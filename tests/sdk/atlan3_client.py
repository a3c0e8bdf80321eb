"""An app's use of the Atlan SDK 3.x state store and credentials, run unmodified.

Runs inside the ``atlan-3`` environment (scripts/sdk-envs), never in statebox's own:
``.cache/sdk-envs/atlan-3/bin/python tests/sdk/atlan3_client.py COMMAND [ARGS]``.
The 3.x SDK has no ``statestore`` service any more: an app's state goes through its
``AppContext.save_state`` / ``load_state`` (keys ``APP:RUN_ID:KEY``) onto the
``DaprStateStore`` the SDK wires at start-up, and credentials through its
``CredentialResolver`` (a platform GUID: the credential config from the object-store
binding, then the secret store; a name: the secret store). All of it is the Dapr HTTP API
at ``http://localhost:$DAPR_HTTP_PORT`` through the SDK's own ``AsyncDaprClient``. The
infrastructure is built as the SDK's entry point builds it
(``application_sdk.main._create_infrastructure``: it waits on ``GET /v1.0/healthz``, reads
``GET /v1.0/metadata`` and the component files in ``DAPR_COMPONENTS_PATH``) and handed to
the ``AppContext`` as the SDK's execution layer hands it to an activity's context.

Settings come from the environment, read at import time: ``DAPR_HTTP_PORT``,
``DAPR_COMPONENTS_PATH``, ``ATLAN_APPLICATION_NAME``, ``ATLAN_DEPLOYMENT_NAME`` (not
``local``: with ``local`` the SDK neither waits on the sidecar nor asks the secret store).
The 3.x client sends no Dapr API token.

The result is one JSON object, written to the file ``--out`` names (the SDK logs to stdout
too) and printed; the exit code is 1 when a call failed (the JSON then has ``"error"``).

Commands:
  state --app A --run R             save_state, load_state, overwrite, load a missing key,
                                    delete through the state store, leave one value behind
  read --app A --run R --key K      load_state
  credentials --guid G --name N     CredentialResolver.resolve_raw(GUID ref),
                                    CredentialResolver.resolve(basic_ref(N)), get_secret(N)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import traceback
from typing import Any


async def _context(args: argparse.Namespace) -> tuple[Any, Any]:
    # Imported here: the SDK reads its environment at import time.
    from application_sdk.app.context import AppContext
    from application_sdk.infrastructure import set_infrastructure
    from application_sdk.main import _create_infrastructure

    infra = await _create_infrastructure()
    set_infrastructure(infra)
    context = AppContext(
        app_name=args.app,
        app_version="0.0.0",
        run_id=args.run,
        _state_store=infra.state_store,
        _secret_store=infra.secret_store,
    )
    return infra, context


async def state(args: argparse.Namespace) -> dict[str, Any]:
    infra, context = await _context(args)
    try:
        await context.save_state("progress", {"step": 1, "status": "running"})
        first = await context.load_state("progress")
        await context.save_state(
            "progress", {"step": 2, "status": "done", "tables": ["a", "b"], "ratio": 0.5}
        )
        second = await context.load_state("progress")
        missing = await context.load_state("never-saved")
        await context.save_state("scratch", {"temporary": True})
        before_delete = await context.load_state("scratch")
        deleted = await infra.state_store.delete(f"{args.app}:{args.run}:scratch")
        after_delete = await context.load_state("scratch")
        from application_sdk.infrastructure._dapr import http as dapr_http

        return {
            # Set by the SDK's start-up wait only when GET /v1.0/healthz answered 204.
            "sidecar_ready": dapr_http._dapr_sidecar_confirmed_ready,
            "key": f"{args.app}:{args.run}:progress",
            "first": first,
            "second": second,
            "missing": missing,
            "before_delete": before_delete,
            "deleted": deleted,
            "after_delete": after_delete,
        }
    finally:
        await infra._dapr_client.close()


async def read(args: argparse.Namespace) -> dict[str, Any]:
    infra, context = await _context(args)
    try:
        return {"value": await context.load_state(args.key)}
    finally:
        await infra._dapr_client.close()


async def credentials(args: argparse.Namespace) -> dict[str, Any]:
    from application_sdk.credentials.ref import CredentialRef, basic_ref
    from application_sdk.credentials.resolver import CredentialResolver

    infra, context = await _context(args)
    try:
        resolver = CredentialResolver(infra.secret_store)
        by_guid = await resolver.resolve_raw(
            CredentialRef(name=args.guid, credential_type="unknown", credential_guid=args.guid)
        )
        named = await resolver.resolve(basic_ref(args.name))
        return {
            "by_guid": by_guid,
            "named": {"type": type(named).__name__, **named.model_dump()},
            "secret": json.loads(await context.get_secret(args.name)),
        }
    finally:
        await infra._dapr_client.close()


COMMANDS = {"state": state, "read": read, "credentials": credentials}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--app", default="statebox-sdk3")
    parser.add_argument("--run", default="run-1")
    parser.add_argument("--key")
    parser.add_argument("--guid")
    parser.add_argument("--name")
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
