#!/usr/bin/env bash
# Runs the browser tests against a system this script starts on loopback,
# and always stops (and removes) what it started.
#
#   web-tests/run.sh embedded    [playwright args...]   # agora run, SQLite in a temp dir
#   web-tests/run.sh distributed [playwright args...]   # deploy/run-local.sh: PostgreSQL + RabbitMQ
#
# It builds nothing: AGORA_BIN (default target/debug/agora) must be built,
# and `npm ci` done in web-tests/ (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1: the
# tests use Debian's Chromium, CHROMIUM, default /usr/bin/chromium).
#
# Settings (environment): AGORA_BIN; AGORA_WEB_PORT (first port tried for the
# HTTP listener, default 18080; the next free one is taken); for distributed:
# PG_URL (server, no database; default: the server of AGORA_TEST_DATABASE_URL,
# else postgres://postgres@127.0.0.1:5432), AMQP_URL (default:
# AGORA_TEST_AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/%2f).
# The distributed run uses its own database names (agora_web_<pid>_<service>)
# and queue prefix (agora-web-<pid>.), all removed at the end; its services
# listen on the fixed ports `agora services` lists, so one distributed run at
# a time per machine. The embedded run starts a second `agora run` (next free
# port, its own data dir) with --step-timeout-secs 2, for the test of an
# order that requires attention.
#
# The distributed deployment runs with a 5 s step timeout for the same test.
#
# The tests get (environment): AGORA_URL, AGORA_MODE (embedded|distributed);
# AGORA_SLOW_URL and AGORA_SLOW_STEP_SECS (a system whose saga steps time
# out after that many seconds: the second app in embedded mode, the
# deployment itself in distributed mode); embedded: AGORA_DATA_DIR and
# AGORA_SLOW_DATA_DIR (the SQLite files, bus.db among them); distributed:
# AGORA_AMQP_URL and AGORA_AMQP_PREFIX (the broker and the run's queue prefix).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

usage() { echo "usage: $0 embedded|distributed [playwright args...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
mode=$1; shift
case $mode in embedded|distributed) ;; *) usage ;; esac

AGORA_BIN=${AGORA_BIN:-$repo/target/debug/agora}
case $AGORA_BIN in /*) ;; *) AGORA_BIN=$PWD/$AGORA_BIN ;; esac
if [ ! -x "$AGORA_BIN" ]; then
  echo "FATAL: no agora binary at $AGORA_BIN (build it first: cargo build, or set AGORA_BIN)" >&2
  exit 1
fi
if [ ! -x "$here/node_modules/.bin/playwright" ]; then
  echo "FATAL: Playwright is not installed: cd web-tests && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci" >&2
  exit 1
fi
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  echo "FATAL: no Chromium at $CHROMIUM (apt-get install chromium, or set CHROMIUM)" >&2
  exit 1
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# The embedded tests arrange dead letters and held deliveries in bus.db
# with Python's sqlite3 (scripts/embedded-bus.py).
if [ "$mode" = embedded ] && ! python3 -c 'import sqlite3' 2>/dev/null; then
  echo "FATAL: the embedded tests need python3 with its sqlite3 module (apt-get install python3)" >&2
  exit 1
fi

log() { printf '[web-tests %s] %s\n' "$mode" "$*" >&2; }

# Whether a TCP port on 127.0.0.1 can be bound right now.
port_free() {
  node -e '
    const s = require("net").createServer();
    s.once("error", () => process.exit(1));
    s.listen(Number(process.argv[1]), "127.0.0.1", () => s.close(() => process.exit(0)));
  ' "$1"
}

free_port() { # first port to try
  local port
  for port in $(seq "$1" $(( $1 + 100 ))); do
    if port_free "$port"; then echo "$port"; return 0; fi
  done
  echo "FATAL: no free port in $1..$(( $1 + 100 ))" >&2
  return 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/agora-web.XXXXXX")
port=$(free_port "${AGORA_WEB_PORT:-18080}")
url="http://127.0.0.1:$port"
started=""  # what cleanup has to undo: "", embedded or distributed
agora_pid=""
status=0

show_logs() {
  local f
  for f in "$work"/*.log "$work"/run/*.log; do
    [ -e "$f" ] || continue
    echo "---- last lines of $(basename "$f")" >&2
    tail -n 40 "$f" >&2
  done
}

# --- embedded: every service in one process, SQLite files in $work/data;
# and a second one (its own port and data dir) whose saga steps time out
# after 2 s, for the test of an order that requires attention (a step must
# be able to run out of time within the test's bounds).

slow_pid=""
slow_url=""

# Starts `agora run` on a port with a data dir and extra flags; its pid in
# $launched.
launched=""
launch_embedded() { # port data-dir log flags...
  local p=$1 data=$2 logfile=$3; shift 3
  RUST_LOG=${RUST_LOG:-warn} "$AGORA_BIN" run --listen "127.0.0.1:$p" --data-dir "$data" "$@" \
    >"$logfile" 2>&1 &
  launched=$!
}

wait_ready() { # url pid name
  for _ in $(seq 1 240); do
    if curl -fs "$1/ready" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then
      log "$3 exited before it was ready"
      return 1
    fi
    sleep 0.5
  done
  log "$3 not ready after 120 s"
  return 1
}

start_embedded() {
  started=embedded
  log "starting $AGORA_BIN run on $url (data in $work/data)"
  launch_embedded "$port" "$work/data" "$work/agora.log"
  agora_pid=$launched
  local slow_port
  slow_port=$(free_port $(( port + 1 )))
  slow_url="http://127.0.0.1:$slow_port"
  log "starting a second one with --step-timeout-secs 2 on $slow_url (data in $work/slow)"
  launch_embedded "$slow_port" "$work/slow" "$work/agora-slow.log" --step-timeout-secs 2
  slow_pid=$launched
  wait_ready "$url" "$agora_pid" "agora run" && wait_ready "$slow_url" "$slow_pid" "the second agora run"
  export AGORA_DATA_DIR=$work/data AGORA_SLOW_URL=$slow_url AGORA_SLOW_DATA_DIR=$work/slow \
    AGORA_SLOW_STEP_SECS=2
}

stop_one() { # pid name
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$1" 2>/dev/null; then
    log "$2 did not stop within 30 s of SIGTERM: killing it"
    kill -KILL "$1" 2>/dev/null || true
  fi
  wait "$1" 2>/dev/null || true
}

stop_embedded() {
  stop_one "$agora_pid" "agora run"
  stop_one "$slow_pid" "the second agora run"
}

# --- distributed: deploy/run-local.sh, every service its own process

if [ -n "${PG_URL:-}" ]; then
  :
elif [ -n "${AGORA_TEST_DATABASE_URL:-}" ]; then
  PG_URL=${AGORA_TEST_DATABASE_URL%/*}
else
  PG_URL=postgres://postgres@127.0.0.1:5432
fi
AMQP_URL=${AMQP_URL:-${AGORA_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}}
db_prefix="agora_web_$$_"
amqp_prefix="agora-web-$$."
services=()

# The distributed deployment is one per machine (fixed ports): it runs with
# a short step timeout itself, for the test of an order that requires
# attention (the sagas of the other tests take milliseconds a step).
distributed_step_secs=5

run_local() { # start|stop
  RUN_DIR="$work/run" AGORA_BIN="$AGORA_BIN" PG_URL="$PG_URL" AMQP_URL="$AMQP_URL" \
    DB_PREFIX="$db_prefix" AGORA_AMQP_PREFIX="$amqp_prefix" AGORA_LISTEN="127.0.0.1:$port" \
    AGORA_STEP_TIMEOUT_SECS=$distributed_step_secs \
    RUST_LOG=${RUST_LOG:-warn} bash "$repo/deploy/run-local.sh" "$1"
}

drop_databases() {
  local s
  for s in "${services[@]}"; do
    PGOPTIONS='-c client_min_messages=warning' psql "$PG_URL/postgres" -X -q -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS \"$db_prefix$s\" WITH (FORCE)" >/dev/null
  done
}

delete_queues() {
  local s n queues=()
  # The names the services declare (as in platform's delete_topology), plus
  # any other queue under the prefix that rabbitmqctl can see.
  for s in "${services[@]}"; do
    queues+=("$amqp_prefix$s" "$amqp_prefix$s.dlq")
    for n in $(seq 1 16); do queues+=("$amqp_prefix$s.retry.$n"); done
  done
  if command -v rabbitmqctl >/dev/null 2>&1; then
    while read -r q; do
      [ -n "$q" ] && queues+=("$q")
    done < <(rabbitmqctl -q list_queues name --no-table-headers 2>/dev/null \
      | awk -v p="$amqp_prefix" 'index($0, p) == 1')
  fi
  (cd "$here" && node scripts/amqp-cleanup.js "$AMQP_URL" "$amqp_prefix" "${queues[@]}" >/dev/null)
  if command -v rabbitmqctl >/dev/null 2>&1; then
    local left
    left=$(rabbitmqctl -q list_queues name --no-table-headers 2>/dev/null \
      | awk -v p="$amqp_prefix" 'index($0, p) == 1' | wc -l)
    if [ "$left" -ne 0 ]; then log "WARNING: $left queues under $amqp_prefix are left"; return 1; fi
  fi
}

start_distributed() {
  local name p _paths
  while read -r name p _paths; do
    services+=("$name")
    if ! port_free "$p"; then
      log "FATAL: port $p of the $name service is taken (another distributed run, or deploy/run-local.sh?)"
      return 1
    fi
  done < <("$AGORA_BIN" services)
  psql "$PG_URL/postgres" -X -q -c 'SELECT 1' >/dev/null \
    || { log "FATAL: no PostgreSQL at $PG_URL"; return 1; }
  started=distributed
  drop_databases  # a leftover of an earlier run with the same pid
  log "starting deploy/run-local.sh on $url (databases $db_prefix*, queues $amqp_prefix*, logs in $work/run)"
  run_local start >&2
  # What the tests need to reach the broker (a dead letter to inject).
  export AGORA_AMQP_URL=$AMQP_URL AGORA_AMQP_PREFIX=$amqp_prefix
  export AGORA_SLOW_URL=$url AGORA_SLOW_STEP_SECS=$distributed_step_secs
}

stop_distributed() {
  local ok=0
  run_local stop >/dev/null || ok=1
  drop_databases || { log "WARNING: could not drop the databases $db_prefix*"; ok=1; }
  delete_queues || { log "WARNING: could not delete the queues under $amqp_prefix"; ok=1; }
  return $ok
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ "$status" -ne 0 ] || status=$rc
  case $started in
    embedded) stop_embedded ;;
    distributed) stop_distributed || { [ "$status" -ne 0 ] || status=1; } ;;
  esac
  if [ "$status" -ne 0 ]; then show_logs; fi
  rm -rf "$work"
  log "stopped; exit $status"
  exit "$status"
}
# On INT or TERM: stop the test run first (bash runs a trap only once the
# command in the foreground is over, so the tests run in the background and
# the script waits for them), then the EXIT trap stops the system.
pw_pid=""
on_signal() {
  status=$1
  if [ -n "$pw_pid" ]; then
    kill -TERM "$pw_pid" 2>/dev/null || true
    wait "$pw_pid" 2>/dev/null || true
  fi
  exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

t0=$SECONDS
"start_$mode"
log "ready at $url after $(( SECONDS - t0 )) s"

cd "$here"
# What `npx playwright test` runs, started directly: npx would not pass a
# SIGTERM on to it.
AGORA_MODE=$mode AGORA_URL=$url "$here/node_modules/.bin/playwright" test "$@" &
pw_pid=$!
wait "$pw_pid" || status=$?
pw_pid=""
