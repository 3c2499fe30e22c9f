#!/usr/bin/env bash
# Validates everything under deploy/ without Docker, a cluster or a
# network beyond the package registries:
#
#   scripts/validate-deploy.sh        # from the repository's root (or anywhere)
#
# It makes a virtual environment (target/deploy-venv) with the pinned tools
# of scripts/requirements-deploy.txt, then checks, one line each:
#   yamllint        every YAML file under deploy/ (deploy/.yamllint)
#   compose-schema  deploy/docker-compose.yml against the Compose
#                   Specification's JSON Schema (vendored by check-jsonschema)
#   compose         what a schema cannot see: services, secrets, volumes and
#                   bind mounts defined and present, profiles, loopback-only
#                   ports, the trace endpoint harmless when unset
#   dockerfile      deploy/Dockerfile parsed by BuildKit's parser; the
#                   dependency skeleton made for real from crates/ and checked
#   k8s-schema      every manifest of deploy/k8s against the Kubernetes
#                   OpenAPI schemas (strict: unknown fields fail), for each
#                   version of K8S_VERSIONS (default "1.30.0 1.37.0")
#   k8s-policy      probes, resources, non-root, read-only root, scrape
#                   annotations, HPAs, PDBs, no Secret with data, every
#                   Secret named documented in deploy/README.md
#   kustomization   lists every file of deploy/k8s; the copy of
#                   postgres-init.sh is identical; `kubectl kustomize` (or
#                   `kustomize build`) output validated too, where either is
#                   installed (skipped otherwise)
#   dashboard       the Grafana dashboard: JSON, unique panel ids, the
#                   provisioned data source, only metric names the processes
#                   expose (and every one of them shown)
#   promql          every dashboard expression parsed by promtool
#   prometheus      promtool check config, and a job scraping :8080/metrics
#                   of every service and the gateway
# promtool comes from Debian's `prometheus` package, unpacked (not
# installed) into target/deploy-tools, unless it is on PATH; without it the
# two promtool checks are skipped and say so. Exits non-zero when any check
# fails; a skipped check is not a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

VENV=${DEPLOY_VENV:-$root/target/deploy-venv}
TOOLS=$root/target/deploy-tools
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.37.0"}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=0
skipped=0
say() { printf '%-5s %-15s %s\n' "$1" "$2" "$3"; }

# check NAME COMMAND...: runs COMMAND; its last line of output is the
# summary, the lines before it (shown only on failure) the details.
check() {
  local name=$1 out status
  shift
  set +e
  out=$("$@" 2>&1)
  status=$?
  set -e
  local summary details
  summary=$(printf '%s\n' "$out" | tail -n 1)
  details=$(printf '%s\n' "$out" | sed '$d')
  if [ "$status" -eq 0 ]; then
    say ok "$name" "$summary"
  elif [ "$status" -eq 77 ]; then
    say skip "$name" "$summary"
    skipped=$((skipped + 1))
  else
    [ -z "$details" ] || printf '%s\n' "$details" | sed 's/^/        /'
    say FAIL "$name" "$summary"
    failed=$((failed + 1))
  fi
}

# --- the tools -------------------------------------------------------------

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  # Debian's python3 makes a virtual environment only with python3-venv.
  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-deploy.txt
PY=$VENV/bin/python

promtool=$(command -v promtool || true)
if [ -z "$promtool" ] && [ -x "$TOOLS/usr/bin/promtool" ]; then
  promtool=$TOOLS/usr/bin/promtool
fi
if [ -z "$promtool" ] && command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  # Debian's prometheus package, unpacked here: no daemon is installed or
  # started, only its promtool is used.
  mkdir -p "$TOOLS/deb"
  if (cd "$TOOLS/deb" && { apt-get download -qq prometheus >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get download -qq prometheus >/dev/null 2>&1; }; }); then
    dpkg-deb -x "$(ls "$TOOLS"/deb/prometheus_*.deb | head -n 1)" "$TOOLS/deb/x" \
      && install -D -m 0755 "$TOOLS/deb/x/usr/bin/promtool" "$TOOLS/usr/bin/promtool" \
      && promtool=$TOOLS/usr/bin/promtool
  fi
  rm -rf "$TOOLS/deb"
fi

kustomize_cmd=()
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  kustomize_cmd=(kubectl kustomize)
elif command -v kustomize >/dev/null; then
  kustomize_cmd=(kustomize build)
fi

# --- the checks that need Python: one program, a subcommand each ----------

cat >"$work/checks.py" <<'PY'
"""The checks of scripts/validate-deploy.sh that read the files themselves.
Each subcommand prints its problems, one a line, then a one-line summary;
it exits 1 when there is any problem."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

DEPLOY = "deploy"
K8S = os.path.join(DEPLOY, "k8s")
COMPOSE = os.path.join(DEPLOY, "docker-compose.yml")
DASHBOARD = os.path.join(DEPLOY, "observability/grafana/dashboards/agora.json")
DATASOURCES = os.path.join(DEPLOY, "observability/grafana/provisioning/datasources")
DASHBOARD_PROVIDERS = os.path.join(DEPLOY, "observability/grafana/provisioning/dashboards")
PROMETHEUS = os.path.join(DEPLOY, "observability/prometheus.yml")
README = os.path.join(DEPLOY, "README.md")

# Every metric the processes expose (crates/platform/src/metrics.rs and the
# order service's saga metrics): a dashboard expression may name no other.
METRICS = {
    "agora_http_requests_total",
    "agora_http_request_duration_seconds",
    "agora_saga_transitions_total",
    "agora_orders",
    "agora_saga_step_duration_seconds",
    "agora_saga_duration_seconds",
    "agora_saga_compensations_total",
    "agora_orders_requiring_attention",
    "agora_events_published_total",
    "agora_events_consumed_total",
    "agora_events_retried_total",
    "agora_events_dead_lettered_total",
    "agora_events_duplicates_total",
    "agora_outbox_backlog",
    "agora_outbox_oldest_age_seconds",
    "agora_consumer_batch_size",
    "agora_queue_depth",
    "agora_idempotent_replays_total",
    "agora_breaker_state",
    "agora_db_pool_connections",
    "agora_db_pool_max_connections",
}
HISTOGRAMS = {
    "agora_http_request_duration_seconds",
    "agora_saga_step_duration_seconds",
    "agora_saga_duration_seconds",
    "agora_consumer_batch_size",
}
SCALED = ["order", "inventory", "payment"]

problems = []


def problem(text):
    problems.append(text)


def finish(summary):
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s), listed above")
        sys.exit(1)
    print(summary)


def services():
    """The services, from the one list deploy/ keeps (postgres-init.sh)."""
    text = open(os.path.join(DEPLOY, "postgres-init.sh")).read()
    m = re.search(r"^SERVICES=\(([^)]*)\)", text, re.M)
    if not m:
        sys.exit("deploy/postgres-init.sh has no SERVICES=(...) list")
    return m.group(1).split()


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# --- compose -----------------------------------------------------------------

def secrets_made():
    """The files deploy/make-secrets.sh writes into deploy/secrets/."""
    text = open(os.path.join(DEPLOY, "make-secrets.sh")).read()
    m = re.search(r"for name in (.*?); do", text, re.S)
    names = m.group(1).replace("\\\n", " ").split() if m else []
    made = {f"{n}_password" for n in names}
    made.update(re.findall(r"> secrets/([A-Za-z0-9_.]+)", text))
    return made


def compose():
    doc = yaml.safe_load(open(COMPOSE))
    svcs = doc.get("services", {})
    top_secrets = doc.get("secrets", {}) or {}
    top_volumes = doc.get("volumes", {}) or {}
    made = secrets_made()
    for name, spec in top_secrets.items():
        f = (spec or {}).get("file", "")
        if f.startswith("./secrets/"):
            if f[len("./secrets/"):] not in made:
                problem(f"secret {name}: {f} is not written by deploy/make-secrets.sh")
        elif f and not os.path.exists(os.path.join(DEPLOY, f)):
            problem(f"secret {name}: {f} does not exist")
    for name, spec in svcs.items():
        profiles = spec.get("profiles", [])
        deps = spec.get("depends_on", [])
        for dep in (deps if isinstance(deps, list) else list(deps)):
            if dep not in svcs:
                problem(f"{name} depends on {dep}, which is not a service")
            elif not profiles and svcs[dep].get("profiles"):
                problem(f"{name} (always on) depends on {dep}, which only a profile starts")
        for s in spec.get("secrets", []):
            src = s if isinstance(s, str) else s.get("source")
            if src not in top_secrets:
                problem(f"{name} uses secret {src}, which is not defined")
        for v in spec.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith(("./", "../", "/")):
                if src.startswith("./secrets/"):
                    if src[len("./secrets/"):] not in made:
                        problem(f"{name} mounts {src}, which deploy/make-secrets.sh does not write")
                elif not os.path.exists(os.path.join(DEPLOY, src)):
                    problem(f"{name} mounts {src}, which does not exist")
            elif src and src not in top_volumes:
                problem(f"{name} uses volume {src}, which is not defined")
        for p in spec.get("ports", []):
            if not str(p).startswith("127.0.0.1:"):
                problem(f"{name} publishes {p} beyond loopback")
        image = spec.get("image", "")
        if image.startswith("agora:"):
            env = spec.get("environment", {})
            if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") != "${OTEL_EXPORTER_OTLP_ENDPOINT:-}":
                problem(f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT is not ${{OTEL_EXPORTER_OTLP_ENDPOINT:-}} (empty when unset)")
            if env.get("AGORA_LOG_FORMAT") not in ("${AGORA_LOG_FORMAT:-human}", "human", "json"):
                problem(f"{name}: AGORA_LOG_FORMAT is {env.get('AGORA_LOG_FORMAT')!r}, not human or json")
        elif ":" not in image or image.endswith(":latest"):
            problem(f"{name}: image {image!r} is not pinned to a version")
        for key, value in (spec.get("environment", {}) or {}).items():
            if "PASSWORD" in key and not key.endswith("_FILE"):
                problem(f"{name}: {key} holds a password instead of naming a file")
    expected = {s: ["service", s] for s in services()}
    expected["gateway"] = ["gateway"]
    for name, command in expected.items():
        spec = svcs.get(name)
        if spec is None:
            problem(f"no service {name}")
            continue
        if spec.get("command") != command:
            problem(f"{name} runs {spec.get('command')}, not {command}")
        if spec.get("profiles"):
            problem(f"{name} is behind a profile; the distributed mode starts without one")
    for name in ["prometheus", "grafana", "jaeger"]:
        if svcs.get(name, {}).get("profiles") != ["observability"]:
            problem(f"{name} is not (only) in the profile observability")
    if svcs.get("embedded", {}).get("profiles") != ["embedded"]:
        problem("embedded is not (only) in the profile embedded")
    elif not any(str(v).endswith(":/var/lib/agora") for v in svcs["embedded"].get("volumes", [])):
        problem("embedded keeps no volume at /var/lib/agora")
    grafana_mounts = [v for v in svcs.get("grafana", {}).get("volumes", []) if isinstance(v, str)]
    providers = [p for f in sorted(glob.glob(os.path.join(DASHBOARD_PROVIDERS, "*.yml")))
                 for p in (yaml.safe_load(open(f)) or {}).get("providers", [])]
    for p in providers:
        path = p.get("options", {}).get("path")
        if not any(m.split(":")[1] == path for m in grafana_mounts):
            problem(f"the dashboard provider reads {path}, which the grafana service does not mount")
    profiles = sorted({p for s in svcs.values() for p in s.get("profiles", [])})
    finish(f"{len(svcs)} services ({len(expected)} of Agora), profiles {', '.join(profiles)}; "
           f"{len(top_secrets)} secrets, {len(top_volumes)} volumes")


# --- Dockerfile ----------------------------------------------------------------

def dockerfile(workdir):
    import dockerfile as df

    path = os.path.join(DEPLOY, "Dockerfile")
    cmds = df.parse_file(path)
    stages, current = [], None
    for c in cmds:
        if c.cmd == "FROM":
            current = {"name": c.value[2] if len(c.value) > 2 else None, "cmds": []}
            stages.append(current)
        elif current is not None:
            current["cmds"].append(c)
    names = {s["name"] for s in stages}
    ignore = open(path + ".dockerignore").read().split("\n")
    allowed = {l[1:].strip("/") for l in ignore if l.startswith("!")}
    for s in stages:
        for c in s["cmds"]:
            if c.cmd != "COPY":
                continue
            source = [f for f in c.flags if f.startswith("--from=")]
            if source:
                if source[0][len("--from="):] not in names:
                    problem(f"COPY {source[0]}: no such stage")
                continue
            for src in c.value[:-1]:
                if not os.path.exists(src):
                    problem(f"COPY {src}: not in the build context")
                elif src.strip("/").split("/")[0] not in allowed:
                    problem(f"COPY {src}: left out of the context by Dockerfile.dockerignore")
    final = stages[-1]["cmds"]
    kinds = [c.cmd for c in final]
    for needed in ["USER", "VOLUME", "HEALTHCHECK", "ENTRYPOINT"]:
        if needed not in kinds:
            problem(f"the image has no {needed}")
    users = [c for c in final if c.cmd == "USER"]
    if users and users[-1].value[0].split(":")[0] in ("root", "0"):
        problem("the image runs as root")
    volumes = [c for c in final if c.cmd == "VOLUME"]
    if not volumes or "/var/lib/agora" not in volumes[0].value:
        problem("the image declares no VOLUME /var/lib/agora")
    else:
        before = final[: final.index(volumes[0])]
        if not any(c.cmd == "RUN" and "/var/lib/agora" in c.value[0] for c in before):
            problem("/var/lib/agora is not made (and owned) before it is declared a volume")
    if any("/tmp" in " ".join(c.value) for c in final if c.cmd == "CMD"):
        problem("the embedded mode keeps its data in /tmp")
    # The build stage: dependencies from the skeleton first, sources after.
    build = next((s for s in stages if s["name"] == "build"), None)
    if build is None:
        problem("no stage `build`")
    else:
        order = [("cargo" if c.cmd == "RUN" and "cargo build" in c.value[0] else
                  "sources" if c.cmd == "COPY" and c.value[0] == "crates" else
                  "skeleton" if c.cmd == "COPY" and any(f == "--from=skeleton" for f in c.flags) else None)
                 for c in build["cmds"]]
        order = [o for o in order if o]
        if order != ["skeleton", "cargo", "sources", "cargo"]:
            problem(f"the build stage runs {order}, not skeleton, cargo, sources, cargo")
        last = [c for c in build["cmds"] if c.cmd == "RUN" and "cargo build" in c.value[0]][-1:]
        if last and "touch" not in last[0].value[0]:
            problem("the sources are not touched before the second build")
    # The skeleton, made for real from this tree with the stage's own script.
    skeleton = next((s for s in stages if s["name"] == "skeleton"), None)
    runs = [c for c in skeleton["cmds"] if c.cmd == "RUN"] if skeleton else []
    if not runs:
        problem("no stage `skeleton` with a RUN")
        return finish("deploy/Dockerfile")
    src = os.path.join(workdir, "src")
    out = os.path.join(workdir, "skeleton")
    os.makedirs(src)
    for f in ["Cargo.toml", "Cargo.lock"]:
        shutil.copy(f, src)
    shutil.copytree("crates", os.path.join(src, "crates"),
                    ignore=shutil.ignore_patterns("target"))
    script = runs[0].value[0].replace("/skeleton", out)
    r = subprocess.run(["sh", "-c", script], cwd=src, capture_output=True, text=True)
    if r.returncode != 0:
        problem(f"the skeleton's RUN failed: {r.stderr.strip()}")
        return finish("deploy/Dockerfile")
    same = lambda a, b: open(a, "rb").read() == open(b, "rb").read()
    for f in ["Cargo.toml", "Cargo.lock"]:
        if not os.path.exists(os.path.join(out, f)) or not same(f, os.path.join(out, f)):
            problem(f"the skeleton's {f} is not the workspace's")
    expected_files = {"Cargo.toml", "Cargo.lock"}
    crates = sorted(glob.glob("crates/*/Cargo.toml"))
    for manifest in crates:
        d = os.path.dirname(manifest)
        expected_files.add(manifest)
        if not os.path.exists(os.path.join(out, manifest)) or not same(manifest, os.path.join(out, manifest)):
            problem(f"the skeleton lacks {manifest} as it is")
        text = open(manifest).read()
        for target, stub in [("src/lib.rs", ""), ("src/main.rs", "fn main() {}\n")]:
            if os.path.exists(os.path.join(d, target)):
                expected_files.add(os.path.join(d, target))
                p = os.path.join(out, d, target)
                if not os.path.exists(p) or open(p).read() != stub:
                    problem(f"the skeleton has no stub {d}/{target}")
        for target in re.findall(r'^\s*path\s*=\s*"([^"]+\.rs)"', text, re.M) + \
                [os.path.relpath(p, d) for p in glob.glob(os.path.join(d, "src/bin/*.rs"))]:
            expected_files.add(os.path.normpath(os.path.join(d, target)))
            if not os.path.exists(os.path.join(out, d, target)):
                problem(f"the skeleton has no stub {d}/{target}")
        m = re.search(r'^build\s*=\s*"([^"]+)"', text, re.M)
        script_path = m.group(1) if m else ("build.rs" if os.path.exists(os.path.join(d, "build.rs")) else None)
        if script_path:
            real = os.path.normpath(os.path.join(d, script_path))
            expected_files.add(real)
            if not os.path.exists(os.path.join(out, real)) or not same(real, os.path.join(out, real)):
                problem(f"the skeleton lacks the build script {real} of {d}")
    made = {os.path.relpath(os.path.join(dp, f), out) for dp, _, fs in os.walk(out) for f in fs}
    for extra in sorted(made - expected_files):
        problem(f"the skeleton holds {extra}, which is not a manifest, a stub or a build script")
    stages_named = ", ".join(s["name"] or "runtime" for s in stages)
    finish(f"stages {stages_named}; skeleton of {len(crates)} crates made and checked "
           f"({len(made)} files, no source)")


# --- Kubernetes ---------------------------------------------------------------

def k8s_docs():
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        if os.path.basename(path) == "kustomization.yaml":
            continue
        for d in load_all(path):
            docs.append((os.path.basename(path), d))
    return docs


def pod_labels(obj):
    return obj["spec"]["template"]["metadata"].get("labels", {})


def k8s_policy():
    docs = k8s_docs()
    by = {}
    for f, d in docs:
        by.setdefault((d.get("kind"), d.get("metadata", {}).get("name")), []).append((f, d))
        if d.get("kind") == "Secret":
            problem(f"{f}: a Secret is committed ({d['metadata'].get('name')}); make it with kubectl")
    for key, found in by.items():
        if len(found) > 1:
            problem(f"{key[0]} {key[1]} is defined {len(found)} times")
    get = lambda kind, name: (by.get((kind, name)) or [(None, None)])[0][1]
    readme = open(README).read() if os.path.exists(README) else ""
    procs = services() + ["gateway"]
    secrets_named = set()
    for name in procs:
        dep, svc = get("Deployment", name), get("Service", name)
        if dep is None:
            problem(f"no Deployment {name}")
            continue
        if svc is None or svc["spec"].get("type", "ClusterIP") != "ClusterIP":
            problem(f"no ClusterIP Service {name}")
        elif not set(svc["spec"].get("selector", {}).items()) <= set(pod_labels(dep).items()):
            problem(f"Service {name} selects no pod of Deployment {name}")
        elif not any(p.get("port") == 8080 for p in svc["spec"].get("ports", [])):
            problem(f"Service {name} has no port 8080")
        pod = dep["spec"]["template"]
        spec = pod["spec"]
        c = spec["containers"][0]
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        for probe, path in [("readinessProbe", "/ready"), ("livenessProbe", "/health")]:
            get_ = c.get(probe, {}).get("httpGet", {})
            port = get_.get("port")
            if get_.get("path") != path or ports.get(port, port) != 8080:
                problem(f"{name}: {probe} is not httpGet {path} on 8080")
        res = c.get("resources", {})
        for part in ["requests", "limits"]:
            for r in ["cpu", "memory"]:
                if r not in res.get(part, {}):
                    problem(f"{name}: no {part}.{r}")
        sc = spec.get("securityContext", {})
        if sc.get("runAsNonRoot") is not True or sc.get("runAsUser") != 10001:
            problem(f"{name}: not runAsNonRoot with runAsUser 10001")
        csc = c.get("securityContext", {})
        if csc.get("readOnlyRootFilesystem") is not True or csc.get("allowPrivilegeEscalation") is not False:
            problem(f"{name}: the root file system is writable or privileges may be escalated")
        ann = pod["metadata"].get("annotations", {})
        if (ann.get("prometheus.io/scrape"), ann.get("prometheus.io/port"), ann.get("prometheus.io/path")) != ("true", "8080", "/metrics"):
            problem(f"{name}: no Prometheus scrape annotations (scrape, port 8080, path /metrics)")
        if not c.get("image", "").startswith("agora:"):
            problem(f"{name}: image {c.get('image')} is not agora")
        if not any(e.get("configMapRef", {}).get("name") == "agora-config" for e in c.get("envFrom", [])):
            problem(f"{name}: does not take the ConfigMap agora-config")
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        files = {s["path"] if "path" in s else None
                 for v in spec.get("volumes", []) for src in v.get("projected", {}).get("sources", [])
                 for s in src.get("secret", {}).get("items", [])}
        expected = {"AMQP_PASSWORD_FILE": "/run/secrets/rabbitmq_password"}
        if name != "gateway":
            expected["DATABASE_URL"] = f"postgres://agora_{name}@postgres:5432/agora_{name}"
            expected["DATABASE_PASSWORD_FILE"] = f"/run/secrets/{name}_db_password"
        for k, v in expected.items():
            if env.get(k) != v:
                problem(f"{name}: {k} is {env.get(k)!r}, not {v!r}")
            if k.endswith("_FILE") and os.path.basename(v) not in files:
                problem(f"{name}: {v} is not mounted from a Secret")
        if "AGORA_ALLOW_DEMO_ACCOUNTS" in env:
            problem(f"{name}: allows the demo accounts (public passwords) on a cluster")
        if name == "identity" and env.get("AGORA_NO_SEED") != "true":
            problem("identity: AGORA_NO_SEED is not \"true\" (it refuses to make demo accounts on 0.0.0.0)")
        if name in SCALED and "replicas" in dep["spec"]:
            problem(f"{name}: the Deployment sets replicas, which its autoscaler owns")
    for name in SCALED:
        hpa = get("HorizontalPodAutoscaler", name)
        if hpa is None or hpa.get("apiVersion") != "autoscaling/v2":
            problem(f"no autoscaling/v2 HorizontalPodAutoscaler {name}")
        else:
            ref = hpa["spec"]["scaleTargetRef"]
            if (ref.get("kind"), ref.get("name")) != ("Deployment", name):
                problem(f"HPA {name} scales {ref}")
            if not any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"].get("metrics", [])):
                problem(f"HPA {name} does not scale on CPU")
            if hpa["spec"].get("minReplicas", 1) < 2:
                problem(f"HPA {name} may scale below 2 pods, which its PodDisruptionBudget would block")
    for name in SCALED + ["gateway"]:
        pdb, dep = get("PodDisruptionBudget", name), get("Deployment", name)
        if pdb is None or pdb.get("apiVersion") != "policy/v1":
            problem(f"no policy/v1 PodDisruptionBudget {name}")
        elif dep is not None and not set(pdb["spec"]["selector"]["matchLabels"].items()) <= set(pod_labels(dep).items()):
            problem(f"PodDisruptionBudget {name} selects no pod of Deployment {name}")
    for name in ["postgres", "rabbitmq"]:
        sts, svc = get("StatefulSet", name), get("Service", name)
        if sts is None:
            problem(f"no StatefulSet {name}")
            continue
        if svc is None or svc["spec"].get("clusterIP") != "None" or sts["spec"].get("serviceName") != name:
            problem(f"StatefulSet {name} has no headless Service {name}")
        if not sts["spec"].get("volumeClaimTemplates"):
            problem(f"StatefulSet {name} has no volumeClaimTemplates")
    ing = [d for _, d in docs if d.get("kind") == "Ingress"]
    if not ing or ing[0].get("apiVersion") != "networking.k8s.io/v1":
        problem("no networking.k8s.io/v1 Ingress")
    else:
        backends = {p["backend"]["service"]["name"] for r in ing[0]["spec"]["rules"] for p in r["http"]["paths"]}
        if backends != {"gateway"}:
            problem(f"the Ingress sends to {backends}, not the gateway alone")
        secrets_named.update(t["secretName"] for t in ing[0]["spec"].get("tls", []))
    cm = get("ConfigMap", "agora-config")
    if cm is None:
        problem("no ConfigMap agora-config")
    else:
        data = cm.get("data", {})
        for s in services():
            if data.get(f"AGORA_{s.upper()}_URL") != f"http://{s}:8080":
                problem(f"agora-config: AGORA_{s.upper()}_URL is not http://{s}:8080")
        if data.get("AGORA_LOG_FORMAT") != "json":
            problem("agora-config: AGORA_LOG_FORMAT is not json")
        if "OTEL_EXPORTER_OTLP_ENDPOINT" not in data:
            problem("agora-config: no OTEL_EXPORTER_OTLP_ENDPOINT")
        if re.match(r"^amqps?://[^@/]*:[^@/]*@", data.get("AMQP_URL", "")) or "AMQP_URL" not in data:
            problem("agora-config: AMQP_URL is missing or carries a password")
        for k in data:
            if k == "AGORA_ALLOW_DEMO_ACCOUNTS":
                problem("agora-config allows the demo accounts (public passwords) on a cluster")
            if "PASSWORD" in k or "SECRET" in k:
                problem(f"agora-config: {k} (a secret in a ConfigMap)")
    # Every Secret a manifest names, with the kubectl command that makes it.
    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "secret" and isinstance(v, dict):
                    secrets_named.add(v.get("name") or v.get("secretName"))
                if k == "secretKeyRef":
                    secrets_named.add(v.get("name"))
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    for _, d in docs:
        walk(d)
    secrets_named.discard(None)
    for s in sorted(secrets_named):
        if not re.search(rf"create secret (generic|tls) {re.escape(s)}\b", readme):
            problem(f"the Secret {s} is used but deploy/README.md gives no `kubectl create secret ... {s}`")
    kinds = {}
    for _, d in docs:
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
    finish(f"{len(procs)} Deployments with probes, resources, non-root; "
           f"{kinds.get('HorizontalPodAutoscaler', 0)} HPAs, {kinds.get('PodDisruptionBudget', 0)} PDBs, "
           f"{len(secrets_named)} Secrets named and documented, none committed")


def kustomization():
    k = yaml.safe_load(open(os.path.join(K8S, "kustomization.yaml")))
    listed = list(k.get("resources", []))
    for gen in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
        for f in gen.get("files", []):
            listed.append(f.split("=", 1)[-1])
        if gen in k.get("secretGenerator", []):
            problem(f"secretGenerator {gen.get('name')}: the Secrets are made with kubectl, not from files here")
    for f in listed:
        if not os.path.exists(os.path.join(K8S, f)):
            problem(f"kustomization.yaml lists {f}, which does not exist")
    present = {os.path.relpath(os.path.join(dp, f), K8S) for dp, _, fs in os.walk(K8S) for f in fs}
    present -= {"kustomization.yaml"}
    present = {p for p in present if not p.lower().startswith("readme")}
    for f in sorted(present - set(listed)):
        problem(f"deploy/k8s/{f} is not listed in kustomization.yaml")
    for f in sorted({f for f in listed if listed.count(f) > 1}):
        problem(f"kustomization.yaml lists {f} twice")
    if k.get("namespace") != "agora":
        problem("kustomization.yaml does not set the namespace agora")
    copy = os.path.join(K8S, "postgres-init.sh")
    if os.path.exists(copy) and open(copy, "rb").read() != open(os.path.join(DEPLOY, "postgres-init.sh"), "rb").read():
        problem("deploy/k8s/postgres-init.sh differs from deploy/postgres-init.sh (copy it again)")
    finish(f"{len(listed)} files listed, all of deploy/k8s; namespace {k.get('namespace')}")


# --- Grafana and Prometheus ---------------------------------------------------

def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def expressions(dash):
    for p in all_panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if "expr" in t:
                yield p, t["expr"]
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if q and v.get("type") == "query":
            yield v, q


def metric_names(expr):
    names = set()
    for m in re.findall(r"\bagora_[a-z_]+", expr):
        base = re.sub(r"_(bucket|sum|count)$", "", m)
        names.add(base if base in HISTOGRAMS else m)
    return names


def dashboard():
    try:
        dash = json.load(open(DASHBOARD))
    except (OSError, ValueError) as e:
        problem(f"{DASHBOARD}: {e}")
        return finish("the dashboard does not parse")
    sources = [d for f in sorted(glob.glob(os.path.join(DATASOURCES, "*.yml")))
               for d in (yaml.safe_load(open(f)) or {}).get("datasources", [])]
    prom_uids = {d.get("uid") for d in sources if d.get("type") == "prometheus"}
    if not prom_uids:
        problem("no Prometheus data source is provisioned")
    if not any(d.get("type") == "jaeger" for d in sources):
        problem("no Jaeger data source is provisioned")
    if dash.get("uid") != "agora":
        problem(f"the dashboard's uid is {dash.get('uid')!r}, not 'agora'")
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        problem(f"schemaVersion {dash.get('schemaVersion')} (older than Grafana 9)")
    ids = {}
    panels = list(all_panels(dash.get("panels", [])))
    for p in panels:
        ids.setdefault(p.get("id"), []).append(p.get("title"))
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "xywh") or g["x"] + g["w"] > 24:
            problem(f"panel {p.get('title')!r}: bad gridPos {g}")
        if p.get("type") == "row":
            continue
        if not p.get("targets"):
            problem(f"panel {p.get('title')!r} has no query")
        for ds in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]:
            if not isinstance(ds, dict) or ds.get("uid") not in prom_uids:
                problem(f"panel {p.get('title')!r}: data source {ds} is not the provisioned Prometheus ({', '.join(sorted(map(str, prom_uids)))})")
    for i, titles in ids.items():
        if i is None or len(titles) > 1:
            problem(f"panel id {i} is used by {titles}")
    used = set()
    for where, expr in expressions(dash):
        names = metric_names(expr)
        used |= names
        for n in sorted(names - METRICS):
            problem(f"{where.get('title') or where.get('name')!r}: {n} is not a metric the processes expose")
    for n in sorted(METRICS - used):
        problem(f"{n} is exposed but on no panel")
    finish(f"{len([p for p in panels if p.get('type') != 'row'])} panels, ids unique, "
           f"{len(used)} metrics used, all exposed; data source uid {', '.join(sorted(prom_uids))}")


def promql_rules(out):
    """A rules file holding every dashboard expression, Grafana's variables
    replaced by values Prometheus parses, for `promtool check rules`."""
    dash = json.load(open(DASHBOARD))
    rules = []
    for i, (_, expr) in enumerate(expressions(dash)):
        e = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "1h")
        e = re.sub(r"\$\{?job\}?", ".*", e)
        if e.startswith("label_values("):
            m = re.match(r"label_values\(([^,]+),", e)
            e = m.group(1).strip() if m else e
        rules.append({"record": f"dashboard:expr_{i}", "expr": e})
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(out, "w"))
    print(len(rules))


def prometheus():
    conf = yaml.safe_load(open(PROMETHEUS))
    svcs = yaml.safe_load(open(COMPOSE)).get("services", {})
    jobs = {j["job_name"]: j for j in conf.get("scrape_configs", [])}
    for name in services() + ["gateway"]:
        job = jobs.get(name)
        if job is None:
            problem(f"no scrape job {name}")
            continue
        if job.get("metrics_path", "/metrics") != "/metrics":
            problem(f"job {name} scrapes {job['metrics_path']}, not /metrics")
        targets = [t for s in job.get("static_configs", []) for t in s.get("targets", [])]
        targets += [f"{n}:{d.get('port')}" for d in job.get("dns_sd_configs", []) for n in d.get("names", [])]
        if f"{name}:8080" not in targets:
            problem(f"job {name} does not scrape {name}:8080 (it scrapes {targets})")
    for name, job in jobs.items():
        targets = [t for s in job.get("static_configs", []) for t in s.get("targets", [])]
        targets += [f"{n}:{d.get('port')}" for d in job.get("dns_sd_configs", []) for n in d.get("names", [])]
        for t in targets:
            host = t.rsplit(":", 1)[0]
            if host not in svcs and host not in ("127.0.0.1", "localhost"):
                problem(f"job {name}: {t} is no service of the compose file")
    finish(f"{len(jobs)} scrape jobs; every service and the gateway at :8080/metrics")


if __name__ == "__main__":
    cmd = sys.argv[1]
    {
        "compose": compose,
        "dockerfile": lambda: dockerfile(sys.argv[2]),
        "k8s-policy": k8s_policy,
        "kustomization": kustomization,
        "dashboard": dashboard,
        "promql-rules": lambda: promql_rules(sys.argv[2]),
        "prometheus": prometheus,
    }[cmd]()
PY

checks() { "$PY" "$work/checks.py" "$@"; }

# --- the checks --------------------------------------------------------------

yamllint_all() {
  local files
  files=$(find deploy \( -name '*.yml' -o -name '*.yaml' \) ! -path 'deploy/secrets/*' | sort)
  "$VENV/bin/yamllint" -f parsable -c deploy/.yamllint $files || { echo "yamllint: the problems above"; return 1; }
  echo "$(wc -w <<<"$files") files clean (deploy/.yamllint)"
}

compose_schema() {
  "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker-compose.yml \
    || { echo "deploy/docker-compose.yml does not match the Compose Specification"; return 1; }
  echo "deploy/docker-compose.yml matches the Compose Specification (check-jsonschema $("$VENV/bin/check-jsonschema" --version | awk '{print $NF}'))"
}

# validate_manifests WHAT FILE...: kubernetes-validate, strict, for every
# version; a kind or apiVersion with no schema is only a warning to the
# tool, and a failure here.
validate_manifests() {
  local what=$1 version out
  shift
  for version in $K8S_VERSIONS; do
    if ! out=$("$VENV/bin/kubernetes-validate" --strict -k "$version" --quiet "$@" 2>&1) || grep -q . <<<"$out"; then
      echo "$out"
      echo "$what: not valid for Kubernetes $version"
      return 1
    fi
  done
}

k8s_schema() {
  local manifests
  manifests=$(find deploy/k8s -name '*.yaml' ! -name kustomization.yaml | sort)
  validate_manifests "the manifests" $manifests || return 1
  echo "$(wc -w <<<"$manifests") manifests valid, strictly, for Kubernetes $K8S_VERSIONS"
}

kustomize_rendered() {
  local listed
  listed=$(checks kustomization) || { echo "$listed"; return 1; }
  if [ ${#kustomize_cmd[@]} -eq 0 ]; then
    echo "$listed; neither kubectl nor kustomize is installed: the build is not rendered"
    return 77
  fi
  "${kustomize_cmd[@]}" deploy/k8s >"$work/rendered.yaml" || { echo "${kustomize_cmd[*]} deploy/k8s failed"; return 1; }
  validate_manifests "the kustomization's build" "$work/rendered.yaml" || return 1
  echo "$listed; ${kustomize_cmd[*]} renders $(grep -c '^kind:' "$work/rendered.yaml") resources, valid for $K8S_VERSIONS"
}

promql() {
  if [ -z "$promtool" ]; then echo "promtool is not available: the expressions are not parsed"; return 77; fi
  local n
  n=$(checks promql-rules "$work/dashboard-rules.yml") || { echo "$n"; return 1; }
  "$promtool" check rules "$work/dashboard-rules.yml" || { echo "a dashboard expression does not parse"; return 1; }
  echo "$n dashboard expressions parse ($("$promtool" --version 2>&1 | head -n 1 | awk '{print "promtool", $3}'))"
}

prometheus_config() {
  local jobs
  jobs=$(checks prometheus) || { echo "$jobs"; return 1; }
  if [ -z "$promtool" ]; then echo "$jobs; promtool is not available: the file is not checked by it"; return 77; fi
  "$promtool" check config deploy/observability/prometheus.yml || { echo "promtool check config fails"; return 1; }
  echo "$jobs; promtool check config passes"
}

check yamllint yamllint_all
check compose-schema compose_schema
check compose checks compose
check dockerfile checks dockerfile "$work/dockerfile"
check k8s-schema k8s_schema
check k8s-policy checks k8s-policy
check kustomization kustomize_rendered
check dashboard checks dashboard
check promql promql
check prometheus prometheus_config

if [ "$failed" -gt 0 ]; then
  echo "validate-deploy: $failed check(s) failed, $skipped skipped"
  exit 1
fi
echo "validate-deploy: all checks passed, $skipped skipped"
