#!/usr/bin/env bash
# POST /applications under load (wrk -t2 -c32), against a one-INSERT FastAPI baseline served
# the same way in the same run. Needs wrk (Debian package) and the venv (`make install`).
#   bash bench/http_write.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
py=.venv/bin/python
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk"; exit 1; }

workdir=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$workdir"; }
trap cleanup EXIT

# PostgreSQL, the broker and one worker from the dev stack; the APIs under test run beside it
# with the same settings and no access log, so both sides do the same HTTP work.
.venv/bin/streamapp dev --api-port 18002 --worker-port 16066 --workers 1 >"$workdir/dev.log" 2>&1 &
pids+=($!)
until grep -q "streamapp is up" "$workdir/dev.log"; do sleep 0.2; done
database_url=$(grep -oE 'postgresql://[^ ]+' "$workdir/dev.log" | head -1)
bootstrap=$(awk '/  Kafka / {print $2}' "$workdir/dev.log" | head -1)

DATABASE_URL=$database_url KAFKA_BOOTSTRAP_SERVERS=$bootstrap LOG_LEVEL=WARNING \
  .venv/bin/streamapp api --port 18000 >"$workdir/api.log" 2>&1 &
pids+=($!)
until curl -s -o /dev/null localhost:18000/healthz; do sleep 0.2; done

DATABASE_URL=$database_url .venv/bin/uvicorn bench.baseline_api:api --port 18001 \
  --log-level warning >"$workdir/baseline.log" 2>&1 &
pids+=($!)
until curl -s -o /dev/null localhost:18001/docs; do sleep 0.2; done

run() {  # name, port
  wrk -t2 -c32 -d"${seconds}s" -s bench/post.lua "http://127.0.0.1:$2" | awk -v name="$1" '/Requests\/sec/ {print $2, name}'
}
for round in 1 2; do
  base=$(run "baseline: one INSERT" 18001)
  ours=$(run "streamapp POST /applications" 18000)
  echo "round $round"
  echo "  $base"
  echo "  $ours"
  awk -v b="${base%% *}" -v o="${ours%% *}" 'BEGIN {printf "  ratio streamapp/baseline: %.2fx\n", o / b}'
done
