#!/usr/bin/env bash
# examples/cursor.sh — a feed cursor carried from one run to the next.
# Each run reads the cursor, "fetches" the items after it and saves the new cursor,
# guarded by the version it read. Two runs: the second starts where the first stopped.
set -euo pipefail
export STATEBOX_DAG="${STATEBOX_DAG:-feed-sync}"   # the namespace: this workflow's name

run_once() {
  cursor=$(statebox get cursors/feed --default '{"last_id": 0}')
  last_id=$(jq -r '.value.last_id' <<<"$cursor")
  version=$(jq -r '.version // 0' <<<"$cursor")      # 0 = never saved: must not exist
  new_last_id=$((last_id + 3))                        # "fetch" three new items
  saved=$(statebox set cursors/feed "{\"last_id\": $new_last_id}" --expected-version "$version")
  echo "run: cursor was $last_id, fetched $((last_id + 1))..$new_last_id," \
    "saved version $(jq -r '.version' <<<"$saved")"
}

run_once
run_once
