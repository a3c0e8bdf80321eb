"""A feed cursor carried from one workflow run to the next.

Each run reads the cursor (default: start at 0), "fetches" the next items after it,
and saves the new cursor guarded by the version it read, so two overlapping runs can
never silently overwrite each other. Run it twice: the second run starts where the
first stopped.
"""

from __future__ import annotations

import statebox


def fetch_after(last_id: int, count: int = 3) -> list[int]:
    return list(range(last_id + 1, last_id + 1 + count))


def run_once(store: statebox.StateStore) -> None:
    cursor = store.get("cursors/feed", default={"last_id": 0})
    items = fetch_after(cursor.value["last_id"])
    saved = store.set(
        "cursors/feed",
        {"last_id": items[-1]},
        expected_version=cursor.version,  # 0 when missing: "must not exist yet"
    )
    print(
        f"run: cursor was {cursor.value['last_id']}, fetched {items}, saved version {saved.version}"
    )


if __name__ == "__main__":
    context = statebox.RunContext.from_env().merged(dag="feed-sync", run_id="demo")
    with statebox.open_store(context=context) as store:
        print("store:", store.backend.url)
        run_once(store)
        run_once(store)
