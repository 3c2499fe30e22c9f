#!/usr/bin/env bash
# Schemathesis against the embedded app: every REST operation of the
# OpenAPI document the app serves, with every check, three times — without
# a token, as the demo customer and as the demo operator — from a fixed
# seed. Fails on any finding. Prints the requests sent per operation.
#
#   scripts/schemathesis.sh [BINARY] [VENV]
#
# BINARY: the agora binary (default: target/debug/agora, or under
# $CARGO_TARGET_DIR). VENV: where Schemathesis is installed (default:
# target/schemathesis-venv); created, and filled from
# scripts/requirements-schemathesis.txt, when it does not hold that version.
# SCHEMATHESIS_SEED and SCHEMATHESIS_EXAMPLES override the seed and the
# cases per operation and run.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
binary=${1:-$target/debug/agora}
venv=${2:-$target/schemathesis-venv}
seed=${SCHEMATHESIS_SEED:-20240611}
examples=${SCHEMATHESIS_EXAMPLES:-40}
requirements=scripts/requirements-schemathesis.txt
config=$PWD/schemathesis.toml

log() { printf '\n== %s\n' "$*"; }

[ -x "$binary" ] || { echo "FATAL: no agora binary at $binary (cargo build first)" >&2; exit 1; }

# --- Schemathesis, pinned -------------------------------------------------
wanted=$(sed -n 's/^schemathesis==//p' "$requirements")
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $wanted"; then
  log "installing Schemathesis $wanted into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
fi
st="$venv/bin/schemathesis"
python="$venv/bin/python"

# --- the app, on a free loopback port, with fresh data --------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/agora-schemathesis.XXXXXX")
app_pid=
stop() {
  if [ -n "$app_pid" ] && kill -0 "$app_pid" 2>/dev/null; then
    kill "$app_pid" 2>/dev/null || true
    wait "$app_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
log "starting $binary on $base"
# No rate limit: Schemathesis sends far more than a client would, from one
# address. The demo accounts exist on a loopback listener.
"$binary" run --listen "127.0.0.1:$port" --data-dir "$work/data" --rate-limit 0 \
  >"$work/app.log" 2>&1 &
app_pid=$!
ready=
for _ in $(seq 1 60); do
  if "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$base/ready" 2>/dev/null; then
    ready=1
    break
  fi
  kill -0 "$app_pid" 2>/dev/null || break
  sleep 1
done
if [ -z "$ready" ]; then
  echo "FATAL: the app did not become ready; its log:" >&2
  cat "$work/app.log" >&2
  exit 1
fi

# An access token (15 minutes: more than the whole run) for a demo account.
token() {
  "$python" - "$base/api/v1/auth/token" "$1" "$2" <<'PY'
import json, sys, urllib.request
url, email, password = sys.argv[1:]
body = json.dumps({"email": email, "password": password}).encode()
request = urllib.request.Request(url, body, {"content-type": "application/json"})
print(json.load(urllib.request.urlopen(request))["access_token"])
PY
}
customer_token=$(token shopper@example.com demo-shopper-password)
operator_token=$(token operator@example.com demo-operator-password)

# --- the runs -------------------------------------------------------------
# One run per way of calling. `ignored_auth` stays on in every run: with a
# token it checks that the same request without one, or with a forged
# one, is refused.
# GraphQL (its schema read by introspection) the same three ways. Its
# server-error check counts every field error as a crash unless its code is
# one of Apollo's client codes, and its positive-data check wants every
# value of a field's GraphQL type accepted (an `ID` that is not a UUID, a
# quantity of 0): GraphQL's types cannot state those rules, which REST's
# document does. Both are replaced by the server's own contract, checked by
# scripts/schemathesis_graphql.py: no 5xx, and every error raised while
# resolving a field carries the 4xx status the REST call answered.
graphql_checks=(--exclude-checks not_a_server_error,positive_data_acceptance)
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"

failed=0
run_one() { # name, schema location, extra arguments...
  local name=$1 location=$2
  shift 2
  log "Schemathesis: $name"
  if ! "$st" --config-file "$config" --no-color run "$location" \
      --checks all \
      --max-examples "$examples" \
      --seed "$seed" \
      --workers 2 \
      --generation-database none \
      --report ndjson --report-ndjson-path "$work/$name.ndjson" \
      "$@"; then
    failed=1
  fi
}

started=$SECONDS
run_one anonymous "$base/api/openapi.json"
run_one customer "$base/api/openapi.json" -H "Authorization: Bearer $customer_token"
run_one operator "$base/api/openapi.json" -H "Authorization: Bearer $operator_token"
export SCHEMATHESIS_HOOKS=schemathesis_graphql
run_one graphql-anonymous "$base/graphql" "${graphql_checks[@]}"
run_one graphql-customer "$base/graphql" "${graphql_checks[@]}" -H "Authorization: Bearer $customer_token"
run_one graphql-operator "$base/graphql" "${graphql_checks[@]}" -H "Authorization: Bearer $operator_token"
unset SCHEMATHESIS_HOOKS
elapsed=$((SECONDS - started))

# --- requests per operation, from the NDJSON reports -----------------------
log "requests sent, per operation and way of calling (${elapsed}s)"
"$python" - "$work" anonymous customer operator graphql-anonymous graphql-customer graphql-operator <<'PY'
import collections, json, os, sys

work, modes = sys.argv[1], sys.argv[2:]
counts = collections.defaultdict(collections.Counter)
for mode in modes:
    path = os.path.join(work, f"{mode}.ndjson")
    if not os.path.exists(path):
        continue
    with open(path) as report:
        for line in report:
            event = json.loads(line).get("ScenarioFinished")
            if not event:
                continue
            recorder = event["recorder"]
            cases = recorder.get("cases", {})
            for case_id, interaction in recorder.get("interactions", {}).items():
                # An operation's scenario is labelled with it, and so are
                # the probes its checks send (another method, no token); a
                # stateful scenario spans several, each case names its own.
                operation = recorder["label"]
                if not operation.startswith(("GET ", "POST ", "PUT ", "PATCH ", "DELETE ", "Query.", "Mutation.")):
                    case = cases.get(case_id, {}).get("value", {})
                    method = case.get("method") or interaction["request"]["method"]
                    operation = f'{method.upper()} {case.get("path", "?")}'
                counts[operation][mode] += 1
width = max(len(op) for op in counts) if counts else 10
print(f'{"operation":<{width}} ' + " ".join(f"{m:>{max(9, len(m))}}" for m in modes) + f' {"total":>9}')
totals = collections.Counter()
for operation in sorted(counts, key=lambda op: (op.split(" ", 1)[-1], op)):
    row = counts[operation]
    totals.update(row)
    print(f"{operation:<{width}} " + " ".join(f"{row[m]:>{max(9, len(m))}}" for m in modes) + f" {sum(row.values()):>9}")
print(f'{"total":<{width}} ' + " ".join(f"{totals[m]:>{max(9, len(m))}}" for m in modes) + f" {sum(totals.values()):>9}")
print(f"{len(counts)} operations, {sum(totals.values())} requests")
PY

if [ "$failed" != 0 ]; then
  echo "FAIL: Schemathesis found problems (above); the app's log is $work/app.log" >&2
  cp "$work/app.log" "${TMPDIR:-/tmp}/agora-schemathesis-app.log" 2>/dev/null || true
  exit 1
fi
echo "Schemathesis: no findings"
