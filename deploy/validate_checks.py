#!/usr/bin/env python3
"""Structural checks for deploy/, called by deploy/validate.sh.

Each subcommand prints what it found wrong and exits non-zero on an error.
Schema-level validation is done by the real tools (kubernetes-validate,
docker-compose, hadolint, systemd-analyze); this file checks what those tools
cannot know: that the pieces agree with each other and with the tilegate
contract (ports, probes, secrets by env, one shared store and KEK, grace
periods). Signing keys live in the store, encrypted with the KEK: no
deployment may carry a signing-key Secret, volume or keys_dir.

Usage: validate_checks.py SUBCOMMAND [ARGS]
  toml FILE...                  config files parse and hang together
  dockerfile DOCKERFILE         image layout (stages, user, healthcheck, ports)
  compose COMPOSE_FILE          services, secrets by env, shared store/KEK, grace
  k8s-render KUSTOMIZATION_DIR  fallback renderer when kubectl is absent
  k8s RENDERED_YAML K8S_DIR     policy checks on the rendered manifests
  systemd UNIT TOML             unit directives and grace vs TimeoutStopSec
  docs DOC_FILE REPO_ROOT       every repo path the doc mentions exists
  healthcheck-server PORTFILE   tiny admin-listener stand-in for healthcheck.sh
  lo-up                         bring up loopback in a fresh network namespace
"""

from __future__ import annotations

import fcntl
import fnmatch
import http.server
import os
import re
import socket
import struct
import sys
from pathlib import Path

try:
    import tomllib  # Python >= 3.11
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

import yaml

ERRORS: list[str] = []


def err(msg: str) -> None:
    ERRORS.append(msg)


def done() -> int:
    for e in ERRORS:
        print(f"  - {e}")
    return 1 if ERRORS else 0


def duration_s(text: str) -> float:
    """'30s', '4h', '1h30m', '500ms' -> seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"bad duration {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def port_of(listen: str) -> int:
    m = re.fullmatch(r"(?:\[[0-9a-fA-F:.]+\]|[0-9A-Za-z.\-]+):(\d{1,5})", listen)
    if not m or not 0 < int(m.group(1)) < 65536:
        raise ValueError(f"bad listen address {listen!r}")
    return int(m.group(1))


# --------------------------------------------------------------------------
# tilegate.toml
# --------------------------------------------------------------------------

def load_config(path: str) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def check_config(path: str) -> None:
    try:
        cfg = load_config(path)
    except (OSError, tomllib.TOMLDecodeError) as e:
        err(f"{path}: does not parse: {e}")
        return

    def need(section: str, key: str):
        value = cfg.get(section, {}).get(key)
        if value in (None, ""):
            err(f"{path}: [{section}] {key} is missing")
        return value

    listen = need("server", "listen")
    admin = need("admin", "listen")
    try:
        if listen and admin and port_of(listen) == port_of(admin):
            err(f"{path}: [server] and [admin] listen on the same port")
    except ValueError as e:
        err(f"{path}: {e}")
    grace = cfg.get("server", {}).get("shutdown_grace")
    if grace is not None:
        try:
            duration_s(grace)
        except ValueError as e:
            err(f"{path}: [server] shutdown_grace: {e}")
    if bool(cfg.get("server", {}).get("tls_cert")) != bool(cfg.get("server", {}).get("tls_key")):
        err(f"{path}: [server] tls_cert and tls_key go together")

    need("admin", "token_env")
    url = need("store", "url")
    need("store", "kek_env")
    if url:
        if not re.match(r"^(sqlite|postgres|postgresql)://", url):
            err(f"{path}: [store] url must be sqlite:// or postgres://")
        # Secrets come from the environment, never from a deploy config.
        if re.match(r"^postgres(ql)?://[^/@]*:[^/@]*@", url):
            err(f"{path}: [store] url embeds a password; use PGPASSWORD")

    for key in ("issuer", "audience", "algorithm", "default_ttl", "max_ttl"):
        need("tokens", key)
    tokens = cfg.get("tokens", {})
    if "keys_dir" in tokens:
        err(f"{path}: [tokens] keys_dir is unused (signing keys live in the store); remove it")
    if tokens.get("algorithm") not in (None, "ES256", "EdDSA", "RS256"):
        err(f"{path}: [tokens] algorithm must be ES256, EdDSA or RS256")
    try:
        if tokens.get("default_ttl") and tokens.get("max_ttl"):
            if duration_s(tokens["default_ttl"]) > duration_s(tokens["max_ttl"]):
                err(f"{path}: [tokens] default_ttl exceeds max_ttl")
    except ValueError as e:
        err(f"{path}: [tokens] {e}")

    upstreams = cfg.get("upstreams", [])
    names = [u.get("name") for u in upstreams]
    if not upstreams:
        err(f"{path}: no [[upstreams]]")
    if len(set(names)) != len(names):
        err(f"{path}: duplicate upstream names {names}")
    for u in upstreams:
        backends = u.get("backends") or []
        if not backends:
            err(f"{path}: upstream {u.get('name')!r} has no backends")
        for b in backends:
            if not re.match(r"^https?://[^/\s]+", b):
                err(f"{path}: upstream {u.get('name')!r}: bad backend {b!r}")

    declared_scopes = set(cfg.get("scopes", {}))
    routes = cfg.get("routes", [])
    if not routes:
        err(f"{path}: no [[routes]]")
    for r in routes:
        where = f"{path}: route {r.get('name') or r.get('path') or r.get('prefix')!r}"
        matchers = [k for k in ("path", "prefix") if k in r]
        if len(matchers) != 1:
            err(f"{where}: needs exactly one of path and prefix")
        elif not str(r[matchers[0]]).startswith("/"):
            err(f"{where}: {matchers[0]} must start with /")
        if r.get("public") and r.get("scopes"):
            err(f"{where}: a public route has no scopes")
        if r.get("upstream") not in names:
            err(f"{where}: unknown upstream {r.get('upstream')!r}")
        if not r.get("public") and not r.get("scopes"):
            err(f"{where}: neither scopes nor public")
        for s in r.get("scopes", []):
            if declared_scopes and s not in declared_scopes:
                err(f"{where}: scope {s!r} not declared in [scopes]")


def cmd_toml(files: list[str]) -> int:
    for f in files:
        check_config(f)
    return done()


# --------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------

def dockerignore_patterns(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.exists():
        return []
    pats = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            pats.append(line.rstrip("/"))
    return pats


def ignored(rel: str, patterns: list[str]) -> bool:
    for p in patterns:
        if p.startswith("**/"):
            if fnmatch.fnmatch(Path(rel).name, p[3:]) or fnmatch.fnmatch(rel, p[3:]):
                return True
        if rel == p or rel.startswith(p + "/") or fnmatch.fnmatch(rel, p):
            return True
    return False


def cmd_dockerfile(dockerfile: str) -> int:
    text = Path(dockerfile).read_text()
    # Join continuation lines, drop comments.
    logical, buf = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not buf:
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        if buf.strip():
            logical.append(buf.strip())
        buf = ""
    instr = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in logical]

    froms = [a for i, a in instr if i == "FROM"]
    if len(froms) < 2:
        err("not a multi-stage build")
    elif not re.match(r"rust:1-bookworm\s+AS\s+builder", froms[0], re.I):
        err(f"first stage should be 'rust:1-bookworm AS builder', got {froms[0]!r}")
    if froms and not re.match(r"(debian:bookworm-slim|gcr\.io/distroless/cc)", froms[-1]):
        err(f"final stage should be debian:bookworm-slim or distroless/cc, got {froms[-1]!r}")
    if not any(i == "RUN" and "cargo build --release --locked" in a for i, a in instr):
        err("no 'cargo build --release --locked'")

    final = instr[max(k for k, (i, _) in enumerate(instr) if i == "FROM"):]
    users = [a for i, a in final if i == "USER"]
    if not users:
        err("final stage has no USER")
    elif users[-1].split(":")[0] in ("0", "root"):
        err("final stage runs as root")
    if not any(i == "HEALTHCHECK" and "CMD" in a for i, a in final):
        err("no HEALTHCHECK in final stage")
    exposed = {p.split("/")[0] for i, a in final if i == "EXPOSE" for p in a.split()}
    for p in ("8080", "9090"):
        if p not in exposed:
            err(f"port {p} not EXPOSEd")
    if not any(i == "VOLUME" and "/var/lib/tilegate" in a for i, a in final):
        err("no VOLUME /var/lib/tilegate")
    if "/etc/tilegate/tilegate.toml" not in text:
        err("config is not at /etc/tilegate/tilegate.toml")

    # COPY sources from the build context (repo root) must exist and must not
    # be excluded by .dockerignore.
    root = Path(dockerfile).resolve().parent.parent
    pats = dockerignore_patterns(root)
    for i, a in instr:
        if i != "COPY" or "--from=" in a:
            continue
        args = [x for x in a.split() if not x.startswith("--")]
        for src in args[:-1]:
            if src == ".":
                continue
            if not (root / src).exists():
                err(f"COPY source {src} does not exist")
            elif ignored(src, pats):
                err(f"COPY source {src} is excluded by .dockerignore")
    for needed in ("Cargo.toml", "Cargo.lock", "src"):
        if ignored(needed, pats):
            err(f".dockerignore excludes {needed}")
    return done()


# --------------------------------------------------------------------------
# compose
# --------------------------------------------------------------------------

SECRET_ENV = ("TILEGATE_ADMIN_TOKEN", "TILEGATE_KEK", "PGPASSWORD")


def cmd_compose(compose_file: str) -> int:
    path = Path(compose_file)
    doc = yaml.safe_load(path.read_text())
    services = doc.get("services") or {}
    for name in ("tilegate", "tilegate-2", "postgres", "tiles"):
        if name not in services:
            err(f"service {name!r} missing")
    if not str(services.get("postgres", {}).get("image", "")).startswith("postgres:16"):
        err("postgres service should run postgres:16")

    replicas = [s for s in ("tilegate", "tilegate-2") if s in services]
    for name in replicas:
        svc = services[name]
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        for key in SECRET_ENV:
            value = str(env.get(key, ""))
            if not re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", value):
                err(f"{name}: {key} must come from the environment as ${{VAR:?msg}}, got {value!r}")
        vols = [str(v) for v in svc.get("volumes", [])]
        if not any(v.endswith(":/etc/tilegate/tilegate.toml:ro") for v in vols):
            err(f"{name}: config not mounted read-only at /etc/tilegate/tilegate.toml")
        if any(":/var/lib/tilegate/keys" in v for v in vols):
            err(f"{name}: mounts /var/lib/tilegate/keys; signing keys live in the store")
        if not svc.get("read_only"):
            err(f"{name}: root filesystem not read-only")
        if "ALL" not in (svc.get("cap_drop") or []):
            err(f"{name}: capabilities not dropped")
        if "image" not in svc:
            err(f"{name}: no image")
    if len(replicas) == 2:
        a, b = (services[r] for r in replicas)
        if a.get("image") != b.get("image"):
            err("the two replicas run different images")

        def env_of(svc: dict) -> dict:
            env = svc.get("environment") or {}
            return dict(e.split("=", 1) for e in env) if isinstance(env, list) else env
        if str(env_of(a).get("TILEGATE_KEK")) != str(env_of(b).get("TILEGATE_KEK")):
            err("the two replicas do not get the same TILEGATE_KEK")
        cfgs = lambda s: {v.split(":")[0] for v in map(str, s.get("volumes", []))
                          if v.endswith(":/etc/tilegate/tilegate.toml:ro")}
        if cfgs(a) != cfgs(b):
            err("the two replicas do not read the same config file")
    for vol in (doc.get("volumes") or {}):
        if "key" in vol:
            err(f"volume {vol!r}: no signing-key volume is needed (keys live in the store)")

    # Every bind-mounted file or dir exists (relative to the compose file).
    for name, svc in services.items():
        for v in map(str, svc.get("volumes", [])):
            src = v.split(":")[0]
            if src.startswith((".", "/")) and not (path.parent / src).exists():
                err(f"{name}: bind mount source {src} does not exist")
        build = svc.get("build")
        if isinstance(build, dict):
            ctx = path.parent / build.get("context", ".")
            if not (ctx / build.get("dockerfile", "Dockerfile")).exists():
                err(f"{name}: build dockerfile not found")
            if not (ctx / "Cargo.toml").exists():
                err(f"{name}: build context has no Cargo.toml")

    # Drain time: compose must wait longer than tilegate's shutdown_grace.
    cfg_path = path.parent / "compose" / "tilegate.toml"
    if cfg_path.exists():
        grace = duration_s(load_config(str(cfg_path)).get("server", {}).get("shutdown_grace", "30s"))
        for name in replicas:
            sgp = services[name].get("stop_grace_period")
            if sgp is None or duration_s(str(sgp)) <= grace:
                err(f"{name}: stop_grace_period must exceed shutdown_grace ({grace:.0f}s)")
        upstream_hosts = {re.sub(r"^https?://([^:/]+).*", r"\1", b)
                          for u in load_config(str(cfg_path)).get("upstreams", [])
                          for b in u.get("backends", [])}
        for h in upstream_hosts:
            if h not in services:
                err(f"compose/tilegate.toml upstream host {h!r} is not a compose service")
        ccfg = load_config(str(cfg_path))
        if not str(ccfg.get("store", {}).get("url", "")).startswith("postgres"):
            err("compose/tilegate.toml: replicas need a shared postgres:// store")
        if ccfg.get("store", {}).get("kek_env", "TILEGATE_KEK") != "TILEGATE_KEK":
            err("compose/tilegate.toml: [store] kek_env is not TILEGATE_KEK, which compose sets")
    else:
        err("deploy/compose/tilegate.toml missing")
    return done()


# --------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
                  "StorageClass", "PriorityClass", "CustomResourceDefinition"}


def cmd_k8s_render(kdir: str) -> int:
    """Minimal kustomize: resources, configMapGenerator (files), namespace,
    images, metadata labels. Only used when kubectl is not installed."""
    base = Path(kdir)
    k = yaml.safe_load((base / "kustomization.yaml").read_text())
    docs = []
    for res in k.get("resources", []):
        docs += [d for d in yaml.safe_load_all((base / res).read_text()) if d]
    for gen in k.get("configMapGenerator", []):
        data = {}
        for f in gen.get("files", []):
            key, _, src = f.partition("=")
            src = src or key
            data[Path(key).name] = (base / src).read_text()
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": gen["name"]}, "data": data})
    ns = k.get("namespace")
    images = {i["name"]: i for i in k.get("images", [])}
    extra_labels = {}
    for entry in k.get("labels", []):
        if entry.get("includeSelectors") or entry.get("includeTemplates"):
            raise ValueError("fallback renderer: labels into selectors/templates unsupported")
        extra_labels.update(entry.get("pairs", {}))
    for d in docs:
        if ns and d["kind"] not in CLUSTER_SCOPED:
            d["metadata"]["namespace"] = ns
        if extra_labels:
            d["metadata"]["labels"] = {**d["metadata"].get("labels", {}), **extra_labels}
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            name = c["image"].split(":")[0]
            if name in images:
                i = images[name]
                c["image"] = f"{i.get('newName', name)}:{i.get('newTag', 'latest')}"
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


def cmd_k8s(rendered: str, kdir: str) -> int:
    docs = [d for d in yaml.safe_load_all(Path(rendered).read_text()) if d]
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ("ConfigMap", "Secret", "Deployment", "Service",
                 "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        if kind not in by_kind:
            err(f"no {kind}")
    if ERRORS:
        return done()

    dep = by_kind["Deployment"][0]
    if len(by_kind["Deployment"]) != 1:
        err("expected exactly one Deployment")
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    sel = spec["selector"]["matchLabels"]
    if any(labels.get(k) != v for k, v in sel.items()):
        err("Deployment selector does not match its pod labels")
    if spec.get("replicas", 1) < 2:
        err("Deployment has fewer than 2 replicas")

    psc = pod.get("securityContext", {})
    if not psc.get("runAsNonRoot"):
        err("pod securityContext.runAsNonRoot is not true")
    if psc.get("runAsUser", 1) == 0:
        err("pod runs as uid 0")
    if pod.get("automountServiceAccountToken") is not False:
        err("service account token is mounted")

    containers = pod["containers"]
    c = next((c for c in containers if c["name"] == "tilegate"), containers[0])
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports.get("http") != 8080 or ports.get("admin") != 9090:
        err(f"container ports should be http=8080 admin=9090, got {ports}")
    csc = c.get("securityContext", {})
    if csc.get("readOnlyRootFilesystem") is not True:
        err("readOnlyRootFilesystem is not true")
    if csc.get("allowPrivilegeEscalation") is not False:
        err("allowPrivilegeEscalation is not false")
    if "ALL" not in csc.get("capabilities", {}).get("drop", []):
        err("capabilities do not drop ALL")
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in res.get(part, {}):
                err(f"resources.{part}.{r} missing")

    def probe(name: str, path: str) -> None:
        p = c.get(name)
        if not p:
            err(f"{name} missing")
            return
        g = p.get("httpGet", {})
        if g.get("path") != path or g.get("port") not in ("admin", 9090):
            err(f"{name} should GET {path} on the admin port, got {g}")
    probe("readinessProbe", "/readyz")
    probe("livenessProbe", "/healthz")

    # Mounts: config dir (no subPath, so updates propagate). No signing-key
    # mount: the keys live in the store, encrypted with the KEK.
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    cfg_mount = mounts.get("/etc/tilegate")
    if not cfg_mount or "configMap" not in vols.get(cfg_mount["name"], {}):
        err("ConfigMap not mounted at /etc/tilegate")
    elif "subPath" in cfg_mount:
        err("config mounted with subPath: ConfigMap updates would never reach the pod")
    if any(p.startswith("/var/lib/tilegate/keys") for p in mounts):
        err("a volume is mounted at /var/lib/tilegate/keys; signing keys live in the store")
    for s in by_kind["Secret"]:
        if "signing" in s["metadata"]["name"]:
            err(f"Secret {s['metadata']['name']}: no signing-key Secret is needed (keys live in the store)")
    for m in c.get("volumeMounts", []):
        if m["name"] not in vols:
            err(f"volumeMount {m['name']} has no volume")

    # Env: secrets by reference, and the references exist.
    secrets = {s["metadata"]["name"]: s for s in by_kind["Secret"]}
    configmaps = {m["metadata"]["name"]: m for m in by_kind["ConfigMap"]}
    env = {e["name"]: e for e in c.get("env", [])}
    for key in SECRET_ENV:
        ref = env.get(key, {}).get("valueFrom", {}).get("secretKeyRef")
        if not ref:
            err(f"env {key} must come from a secretKeyRef")
            continue
        s = secrets.get(ref["name"])
        if not s or ref["key"] not in {**s.get("data", {}), **s.get("stringData", {})}:
            err(f"env {key}: Secret {ref['name']}/{ref['key']} not found")
    for v in vols.values():
        if "configMap" in v and v["configMap"]["name"] not in configmaps:
            err(f"volume {v['name']}: ConfigMap {v['configMap']['name']} not found")
        if "secret" in v and v["secret"]["secretName"] not in secrets:
            err(f"volume {v['name']}: Secret {v['secret']['secretName']} not found")

    # Placeholders only: every Secret value still says REPLACE_ME.
    for s in by_kind["Secret"]:
        for k, v in s.get("stringData", {}).items():
            if "REPLACE_ME" not in str(v) and "REPLACE_ME" not in k:
                err(f"Secret {s['metadata']['name']}/{k} is not a REPLACE_ME placeholder")
        if s.get("data"):
            err(f"Secret {s['metadata']['name']} has base64 data: keep real secrets out of git")

    # Config: the ConfigMap carries deploy/k8s/tilegate.toml, and it is sane.
    cm = next((m for m in by_kind["ConfigMap"] if "tilegate.toml" in m.get("data", {})), None)
    if not cm:
        err("no ConfigMap with key tilegate.toml")
        grace = 30.0
    else:
        src = Path(kdir) / "tilegate.toml"
        if cm["data"]["tilegate.toml"] != src.read_text():
            err("ConfigMap tilegate.toml differs from deploy/k8s/tilegate.toml")
        cfg = tomllib.loads(cm["data"]["tilegate.toml"])
        grace = duration_s(cfg.get("server", {}).get("shutdown_grace", "30s"))
        if port_of(cfg["server"]["listen"]) != 8080 or port_of(cfg["admin"]["listen"]) != 9090:
            err("ConfigMap listeners do not match container ports 8080/9090")
        if not cfg["store"]["url"].startswith("postgres"):
            err("replicated deployment needs a postgres:// store")
        if "keys_dir" in cfg.get("tokens", {}):
            err("[tokens] keys_dir is unused (signing keys live in the store); remove it")
        if cfg["store"].get("kek_env", "TILEGATE_KEK") != "TILEGATE_KEK":
            err("[store] kek_env is not TILEGATE_KEK, which the Deployment sets")
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_sleep = float(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0.0
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    if tgps <= grace + pre_sleep:
        err(f"terminationGracePeriodSeconds {tgps} <= shutdown_grace {grace:.0f} + preStop {pre_sleep:.0f}")

    # Services select the pods and target declared ports.
    for svc in by_kind["Service"]:
        ssel = svc["spec"].get("selector", {})
        if not ssel or any(labels.get(k) != v for k, v in ssel.items()):
            err(f"Service {svc['metadata']['name']} does not select the tilegate pods")
        for p in svc["spec"]["ports"]:
            t = p.get("targetPort", p["port"])
            if t not in ports and t not in ports.values():
                err(f"Service {svc['metadata']['name']} targets unknown port {t}")

    hpa = by_kind["HorizontalPodAutoscaler"][0]
    if hpa["apiVersion"] != "autoscaling/v2":
        err("HPA is not autoscaling/v2")
    ref = hpa["spec"]["scaleTargetRef"]
    if ref.get("kind") != "Deployment" or ref.get("name") != dep["metadata"]["name"]:
        err("HPA does not target the Deployment")
    if hpa["spec"].get("minReplicas", 1) < 2:
        err("HPA minReplicas < 2")

    pdb = by_kind["PodDisruptionBudget"][0]
    if pdb["apiVersion"] != "policy/v1":
        err("PDB is not policy/v1")
    psel = pdb["spec"]["selector"].get("matchLabels", {})
    if not psel or any(labels.get(k) != v for k, v in psel.items()):
        err("PDB does not select the tilegate pods")

    # All objects but the Namespace land in one namespace.
    nss = {d["metadata"].get("namespace") for d in docs if d["kind"] not in CLUSTER_SCOPED}
    if len(nss) != 1 or None in nss:
        err(f"objects spread over namespaces {nss}")
    return done()


# --------------------------------------------------------------------------
# systemd
# --------------------------------------------------------------------------

def cmd_systemd(unit: str, toml_file: str) -> int:
    directives: dict[str, list[str]] = {}
    for line in Path(unit).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            directives.setdefault(k.strip(), []).append(v.strip())

    def one(k: str) -> str | None:
        v = directives.get(k)
        return v[-1] if v else None

    want = {
        "ExecStart": "/usr/local/bin/tilegate serve --config /etc/tilegate/tilegate.toml",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "EnvironmentFile": "-/etc/tilegate/env",
        "StateDirectory": "tilegate",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "MemoryDenyWriteExecute": "yes",
    }
    for k, v in want.items():
        if one(k) != v:
            err(f"{k}={v!r} expected, got {one(k)!r}")
    if one("Type") not in (None, "simple", "exec"):
        err(f"Type should be simple or exec, got {one('Type')}")
    if "@system-service" not in " ".join(directives.get("SystemCallFilter", [])):
        err("SystemCallFilter=@system-service missing")
    if not (one("User") or one("DynamicUser") == "yes"):
        err("no User= or DynamicUser=yes")
    if one("User") in ("root", "0"):
        err("runs as root")

    grace = duration_s(load_config(toml_file).get("server", {}).get("shutdown_grace", "30s"))
    stop = one("TimeoutStopSec")
    if stop is None or duration_s(stop if re.search(r"[a-z]$", stop) else stop + "s") <= grace:
        err(f"TimeoutStopSec ({stop}) must exceed shutdown_grace ({grace:.0f}s)")
    return done()


# --------------------------------------------------------------------------
# docs
# --------------------------------------------------------------------------

def cmd_docs(doc: str, root: str) -> int:
    text = Path(doc).read_text()
    for sec in ("Docker", "Kubernetes", "systemd", "PostgreSQL", "revocation", "rotat"):
        if sec.lower() not in text.lower():
            err(f"{doc}: says nothing about {sec}")
    # Paths into the repo (deploy/..., docs/...) must exist, except the ones
    # the operator creates.
    operator_made = {"deploy/.env"}
    for m in sorted(set(re.findall(r"(?<![\w/.])((?:deploy|docs)/[\w./-]+[\w/])", text))):
        if m not in operator_made and not (Path(root) / m).exists():
            err(f"{doc}: mentions {m}, which does not exist")
    # Markdown links to local files.
    for link in re.findall(r"\]\((?!https?://|#|mailto:)([^)#\s]+)", text):
        if not (Path(doc).parent / link).exists():
            err(f"{doc}: broken link {link}")
    return done()


# --------------------------------------------------------------------------
# healthcheck.sh test server
# --------------------------------------------------------------------------

def cmd_healthcheck_server(portfile: str) -> int:
    """Answers /healthz 200, /readyz 503, anything else 404; writes its port."""

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            code = {"/healthz": 200, "/readyz": 503}.get(self.path, 404)
            body = b"ok" if code == 200 else b"no"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, portfile)
    srv.serve_forever()
    return 0


def cmd_lo_up() -> int:
    """ip link set lo up, without iproute2 (SIOCGIFFLAGS / SIOCSIFFLAGS)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = fcntl.ioctl(s, siocgifflags, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH14x", ifr)[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    table = {
        "toml": lambda: cmd_toml(args),
        "dockerfile": lambda: cmd_dockerfile(args[0]),
        "compose": lambda: cmd_compose(args[0]),
        "k8s-render": lambda: cmd_k8s_render(args[0]),
        "k8s": lambda: cmd_k8s(args[0], args[1]),
        "systemd": lambda: cmd_systemd(args[0], args[1]),
        "docs": lambda: cmd_docs(args[0], args[1]),
        "healthcheck-server": lambda: cmd_healthcheck_server(args[0]),
        "lo-up": cmd_lo_up,
    }
    if cmd not in table:
        print(__doc__)
        return 2
    try:
        return table[cmd]()
    except (KeyError, IndexError, TypeError, ValueError, yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        print(f"  - {cmd}: unexpected structure: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
