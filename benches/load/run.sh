#!/usr/bin/env bash
# benches/load/run.sh: OpenAI chat calls straight to a fake upstream, through LiteLLM's proxy
# and through paygo's proxy, measured in one run on this machine, then a side-by-side table.
#
#   bash benches/load/run.sh                 # every leg
#   LEGS="direct litellm" bash benches/load/run.sh
#   LEGS="direct paygo paygo-postgres" bash benches/load/run.sh   # the embedded store against PostgreSQL
#   LEGS="direct paygo paygo-redis" bash benches/load/run.sh      # the in-memory limiter against Redis
#
# Each leg: a closed loop (CONNECTIONS connections, as fast as answers come: calls/s, p50,
# p99), an open loop at LOW_RATE calls/s and one at RATE calls/s (latency from each call's
# scheduled time: the proxy's added latency is its p99 less the direct p99), and streamed
# calls at STREAM_RATE calls/s (time to first byte). The overloading run (RATE) comes last.
# Knobs (environment, defaults below):
# DURATION WARMUP LEG_WARMUP PAUSE CONNECTIONS RATE LOW_RATE RATE_CONNECTIONS STREAM_RATE CHUNK_DELAY_MS
# UPSTREAM_LATENCY_MS LEGS LITELLM_VERSION LITELLM_WORKERS LITELLM_VENV PAYGO_UPSTREAM MODEL OUT
# PAYGO_BENCH_POSTGRES_URL PAYGO_BENCH_REDIS_URL.
#
# The fake upstream is paygo_testkit::upstream (examples/fake_upstream.rs of paygo-testkit),
# the load generator examples/loadgen.rs beside it. LiteLLM is installed from PyPI into
# LITELLM_VENV on first use, configured by benches/load/litellm.yaml. The paygo leg runs
# when the workspace has an example named `server` (crates/paygo-http), else it is skipped.
# Only loopback addresses are used; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-32}
RATE=${RATE:-1000}
LOW_RATE=${LOW_RATE:-20}
RATE_CONNECTIONS=${RATE_CONNECTIONS:-64}
STREAM_RATE=${STREAM_RATE:-10}
CHUNK_DELAY_MS=${CHUNK_DELAY_MS:-5}
UPSTREAM_LATENCY_MS=${UPSTREAM_LATENCY_MS:-0}
# A closed-loop run before each leg's measures, discarded: LiteLLM's first seconds are slow.
LEG_WARMUP=${LEG_WARMUP:-10}
# Idle seconds between two runs of a leg, for the proxy's background work (LiteLLM's logging) to drain.
PAUSE=${PAUSE:-5}
LEGS=${LEGS:-direct litellm paygo}
# The paygo-postgres leg: paygo's server with --store on this database (a schema of its own).
PAYGO_BENCH_POSTGRES_URL=${PAYGO_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
# The paygo-redis leg: paygo's server with --limiter on this Redis (a key prefix of its own).
PAYGO_BENCH_REDIS_URL=${PAYGO_BENCH_REDIS_URL:-redis://127.0.0.1:6379}
MODEL=${MODEL:-gpt-4o-mini}
LITELLM_VERSION=${LITELLM_VERSION:-1.108.7}
LITELLM_WORKERS=${LITELLM_WORKERS:-2}
LITELLM_VENV=${LITELLM_VENV:-$HOME/.cache/paygo-bench/litellm-$LITELLM_VERSION}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$CARGO_TARGET_DIR/load-results.jsonl}

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    # Each was started with setsid: its process group is its own (LiteLLM's workers included).
    kill -TERM -- "-$pid" 2> /dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2> /dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start NAME COMMAND...: runs it in its own session, output in $work/NAME.log; sets $last_pid.
start() {
  local name=$1
  shift
  setsid "$@" > "$work/$name.log" 2>&1 &
  last_pid=$!
  disown "$last_pid"
  pids+=("$last_pid")
}

# stop PID: stops one process started by start (its whole group).
stop() {
  kill -TERM -- "-$1" 2> /dev/null || true
  for _ in $(seq 1 50); do kill -0 "$1" 2> /dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2> /dev/null || true
}

# wait_for NAME PID SECONDS CHECK...: until CHECK succeeds, or the process dies, or time is up.
wait_for() {
  local name=$1 pid=$2 seconds=$3
  shift 3
  for _ in $(seq 1 $((seconds * 10))); do
    if "$@" > /dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2> /dev/null; then
      echo "$name exited:" >&2
      tail -n 30 "$work/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "$name not ready after ${seconds}s:" >&2
  tail -n 30 "$work/$name.log" >&2
  return 1
}

echo "== building the fake upstream and the load generator (release)"
cargo build --quiet --release -p paygo-testkit --features upstream --example fake_upstream --example loadgen
bin=$CARGO_TARGET_DIR/release/examples

paygo_pkg=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if t["name"] == "server" and "example" in t["kind"]:
            print(p["name"])
')
if [[ " $LEGS " == *" paygo "* || " $LEGS " == *" paygo-postgres "* || " $LEGS " == *" paygo-redis "* ]]; then
  if [[ -z "$paygo_pkg" ]]; then
    echo "== paygo legs skipped: no example named server in the workspace yet"
    LEGS=${LEGS//paygo-postgres/}
    LEGS=${LEGS//paygo-redis/}
    LEGS=${LEGS//paygo/}
  else
    echo "== building paygo's server example (package $paygo_pkg, release)"
    cargo build --quiet --release -p "$paygo_pkg" --example server
  fi
fi

if [[ " $LEGS " == *" litellm "* ]] && [[ ! -x "$LITELLM_VENV/bin/litellm" ]]; then
  echo "== installing litellm[proxy]==$LITELLM_VERSION into $LITELLM_VENV"
  python3 -m venv "$LITELLM_VENV"
  "$LITELLM_VENV/bin/pip" install --quiet "litellm[proxy]==$LITELLM_VERSION"
fi

up_port=$(free_port)
start upstream "$bin/fake_upstream" --listen "127.0.0.1:$up_port" --latency-ms "$UPSTREAM_LATENCY_MS" \
  --chunk-delay-ms "$CHUNK_DELAY_MS" --threads 1
wait_for upstream "$last_pid" 10 grep -q "listening on" "$work/upstream.log"
upstream_url="http://127.0.0.1:$up_port"

: > "$OUT"
echo "== $(date -u +%FT%TZ), $(nproc) cores, commit $(git rev-parse --short HEAD 2> /dev/null || echo '?')," \
  "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   closed loop $CONNECTIONS connections ${DURATION}s; open loop $LOW_RATE/s and $RATE/s;" \
  "streams $STREAM_RATE/s (upstream chunk delay ${CHUNK_DELAY_MS}ms, latency ${UPSTREAM_LATENCY_MS}ms); warmup ${WARMUP}s each"

# measure LEG URL KEY: the four runs of one leg, appended to $OUT.
measure() {
  local leg=$1 url=$2 key=$3
  local common=(--url "$url" --key "$key" --model "$MODEL" --duration "$DURATION" --warmup "$WARMUP")
  echo "-- $leg: warming up ${LEG_WARMUP}s (discarded)"
  "$bin/loadgen" --url "$url" --key "$key" --model "$MODEL" --duration "$LEG_WARMUP" --warmup 0 --connections 8 \
    --label "$leg/warmup" > /dev/null
  echo "-- $leg: closed loop"
  "$bin/loadgen" "${common[@]}" --label "$leg/closed" --connections "$CONNECTIONS" | tee -a "$OUT"
  sleep "$PAUSE"
  echo "-- $leg: open loop $LOW_RATE/s"
  "$bin/loadgen" "${common[@]}" --label "$leg/open-low" --connections "$RATE_CONNECTIONS" --rate "$LOW_RATE" | tee -a "$OUT"
  sleep "$PAUSE"
  echo "-- $leg: streams $STREAM_RATE/s"
  "$bin/loadgen" "${common[@]}" --label "$leg/stream" --connections "$RATE_CONNECTIONS" --rate "$STREAM_RATE" --stream \
    | tee -a "$OUT"
  sleep "$PAUSE"
  # Last: a proxy that cannot keep up is left with a backlog that would skew the runs after it.
  echo "-- $leg: open loop $RATE/s"
  "$bin/loadgen" "${common[@]}" --label "$leg/open-high" --connections "$RATE_CONNECTIONS" --rate "$RATE" | tee -a "$OUT"
  echo "   load after $leg: $(cut -d' ' -f1-3 /proc/loadavg)"
}

for leg in $LEGS; do
  case $leg in
    direct)
      measure direct "$upstream_url/v1/chat/completions" sk-upstream
      ;;
    litellm)
      ll_port=$(free_port)
      echo "== starting LiteLLM $LITELLM_VERSION ($LITELLM_WORKERS workers) on port $ll_port"
      start litellm env FAKE_UPSTREAM_BASE="$upstream_url/v1" FAKE_UPSTREAM_KEY=sk-upstream \
        LITELLM_MASTER_KEY=sk-litellm-bench LITELLM_LOG=ERROR LITELLM_LOCAL_MODEL_COST_MAP=True \
        "$LITELLM_VENV/bin/litellm" --config "$ROOT/benches/load/litellm.yaml" --host 127.0.0.1 --port "$ll_port" \
        --num_workers "$LITELLM_WORKERS" --telemetry False
      ll_pid=$last_pid
      wait_for litellm "$ll_pid" 180 curl -sf "http://127.0.0.1:$ll_port/health/liveliness"
      measure litellm "http://127.0.0.1:$ll_port/v1/chat/completions" sk-litellm-bench
      stop "$ll_pid"
      ;;
    paygo|paygo-postgres|paygo-redis)
      store_args=()
      if [[ $leg == paygo-postgres ]]; then
        # The balances in PostgreSQL, in a schema of this run's own (dropped at the end).
        pg_schema="bench_http_$$"
        store_args=(--store "$PAYGO_BENCH_POSTGRES_URL" --pg-schema "$pg_schema")
      fi
      if [[ $leg == paygo-redis ]]; then
        # The rate limits on Redis, under a key prefix of this run's own (deleted at the end).
        redis_prefix="bench-http-$$"
        store_args=(--limiter "$PAYGO_BENCH_REDIS_URL" --limiter-prefix "$redis_prefix")
      fi
      pg_port=$(free_port)
      token=bench-admin-token
      echo "== starting paygo's server on port $pg_port"
      # One account takes all the load: its plan must not be what limits the run.
      echo '{"EUR": "0.92"}' > "$work/rates.json"
      # A data directory per leg: a leg's ledger must not hold another leg's payment ids.
      start paygo "$CARGO_TARGET_DIR/release/examples/server" --listen "127.0.0.1:$pg_port" \
        --upstream "${PAYGO_UPSTREAM:-$upstream_url}" --data-dir "$work/$leg-data" --admin-token "$token" \
        --requests-per-hour 1000000000 --burst 1000000 --fx-rates "$work/rates.json" "${store_args[@]}"
      pg_pid=$last_pid
      wait_for paygo "$pg_pid" 60 grep -q "listening on" "$work/paygo.log"
      pg_url=$(grep -o 'http://[0-9.:]*' "$work/paygo.log" | head -n 1)
      account=$(curl -sf -X POST "$pg_url/admin/v1/accounts" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' -d '{"name":"load","country":"IE"}')
      account_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["account_id"])' <<< "$account")
      api_key=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<< "$account")
      curl -sf -X POST "$pg_url/admin/v1/accounts/$account_id/payments" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' -d '{"payment_id":"p1","usd":"1000.00","method":"card","card_country":"IE"}' > /dev/null
      measure "$leg" "$pg_url/v1/chat/completions" "$api_key"
      stop "$pg_pid"
      if [[ $leg == paygo-postgres ]]; then
        psql "$PAYGO_BENCH_POSTGRES_URL" -qc "DROP SCHEMA IF EXISTS $pg_schema CASCADE" > /dev/null
      fi
      if [[ $leg == paygo-redis ]]; then
        redis-cli -u "$PAYGO_BENCH_REDIS_URL" --scan --pattern "{$redis_prefix}*" | xargs -r redis-cli -u "$PAYGO_BENCH_REDIS_URL" del > /dev/null
        grep "the Redis rate-limit store" "$work/paygo.log" || true
      fi
      # Group commit: each call is two billing commands (hold, capture) and one usage record.
      grep "server: stopped" "$work/paygo.log" || echo "paygo's server did not stop cleanly: $(tail -n 3 "$work/paygo.log")"
      ;;
    *)
      echo "unknown leg $leg: expected direct, litellm, paygo, paygo-postgres or paygo-redis" >&2
      exit 2
      ;;
  esac
done

echo
python3 "$ROOT/benches/load/table.py" "$OUT"
echo "(results: $OUT)"
