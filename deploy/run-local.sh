#!/usr/bin/env bash
# Runs the distributed mode on one machine without Docker: every service as
# its own process, each with its own PostgreSQL database, over a local
# RabbitMQ, plus the gateway on :8080.
#
#   deploy/run-local.sh start    # build, start everything, wait until ready
#   deploy/run-local.sh stop     # stop every process (SIGTERM, graceful)
#   deploy/run-local.sh status
#
# Settings (environment): PG_URL (server, no database; default the local
# Unix socket, postgres://postgres@%2Fvar%2Frun%2Fpostgresql), AMQP_URL, AGORA_BIN (a built binary;
# default: cargo build --release), RUN_DIR (pids and logs; default
# ./agora-distributed), INSTANCES (instances of order, inventory and
# payment; default 1), DB_PREFIX (of every database name; default agora_),
# AGORA_PUBLIC_URL (the services' public URL; default the gateway's address).
# AGORA_AMQP_PREFIX and the other AGORA_* settings pass through to every
# process.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Unix socket of Debian's PostgreSQL: cheaper than TCP on loopback.
PG_URL=${PG_URL:-postgres://postgres@%2Fvar%2Frun%2Fpostgresql}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
RUN_DIR=${RUN_DIR:-./agora-distributed}
INSTANCES=${INSTANCES:-1}
DB_PREFIX=${DB_PREFIX:-agora_}
declare -A PORT=()
SERVICES=()

start() {
  if [ -z "${AGORA_BIN:-}" ]; then
    cargo build --release --quiet
    AGORA_BIN=./target/release/agora
  fi
  # The services and their ports, in start order, from the binary's own list.
  while read -r name port _paths; do
    SERVICES+=("$name")
    PORT[$name]=$port
  done < <("$AGORA_BIN" services)
  mkdir -p "$RUN_DIR"
  # What clients reach (the gateway): the base of every event's dataschema.
  public_url=${AGORA_PUBLIC_URL:-http://${AGORA_LISTEN:-127.0.0.1:8080}}
  for s in "${SERVICES[@]}"; do
    n=1
    case $s in order|inventory|payment) n=$INSTANCES ;; esac
    for i in $(seq 1 "$n"); do
      port=$(( PORT[$s] + (i - 1) * 100 ))
      # The gateway, on this machine, says which client each request is for.
      DATABASE_URL="$PG_URL/$DB_PREFIX$s" AGORA_LISTEN="127.0.0.1:$port" AGORA_TRUSTED_PROXIES=127.0.0.1 \
        AGORA_PUBLIC_URL="$public_url" nohup "$AGORA_BIN" service "$s" >"$RUN_DIR/$s-$i.log" 2>&1 &
      echo $! >"$RUN_DIR/$s-$i.pid"
      urls="${urls_of[$s]:-}"
      urls_of[$s]="${urls:+$urls,}http://127.0.0.1:$port"
    done
  done
  upstreams=()
  for s in "${SERVICES[@]}"; do upstreams+=(--url "$s=${urls_of[$s]}"); done
  AGORA_LISTEN=${AGORA_LISTEN:-127.0.0.1:8080} \
    nohup "$AGORA_BIN" gateway "${upstreams[@]}" >"$RUN_DIR/gateway.log" 2>&1 &
  echo $! >"$RUN_DIR/gateway.pid"
  for _ in $(seq 1 60); do
    if curl -fs "http://${AGORA_LISTEN:-127.0.0.1:8080}/ready" >/dev/null; then
      echo "ready: http://${AGORA_LISTEN:-127.0.0.1:8080} (logs in $RUN_DIR)"
      return 0
    fi
    sleep 1
  done
  echo "not ready after 60 s; see $RUN_DIR/*.log" >&2
  return 1
}

stop() {
  for pid_file in "$RUN_DIR"/*.pid; do
    [ -e "$pid_file" ] || continue
    kill "$(cat "$pid_file")" 2>/dev/null || true
  done
  for pid_file in "$RUN_DIR"/*.pid; do
    [ -e "$pid_file" ] || continue
    pid=$(cat "$pid_file")
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pid_file"
  done
  echo stopped
}

status() {
  for pid_file in "$RUN_DIR"/*.pid; do
    [ -e "$pid_file" ] || continue
    name=$(basename "$pid_file" .pid)
    if kill -0 "$(cat "$pid_file")" 2>/dev/null; then echo "$name running"; else echo "$name stopped"; fi
  done
}

declare -A urls_of=()
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
