#!/usr/bin/env bash
# examples/counter.sh — add 1 to a shared counter N times (default 1), safe when many
# copies run at once: read the counter, write it back guarded by the version read, and
# when another writer got there first (exit code 4, conflict) read again and retry.
set -uo pipefail
export STATEBOX_DAG="${STATEBOX_DAG:-counter-demo}"

increment() {
  while true; do
    current=$(statebox get counters/hits --default 0) || return
    count=$(jq -r '.value' <<<"$current")
    version=$(jq -r '.version // 0' <<<"$current")
    status=0
    error=$(statebox set counters/hits "$((count + 1))" --expected-version "$version" \
      2>&1 >/dev/null) || status=$?
    case $status in
      0) return 0 ;;
      4) ;;                                  # conflict: someone else wrote first; retry
      *) echo "$error" >&2; return "$status" ;;
    esac
  done
}

for _ in $(seq "${1:-1}"); do
  increment || exit
done
