"""The image and the manifests: linted and validated offline (no container engine or cluster
exists here), and consistent with what the server does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import ROOT
from tests.support.harness import InProcessServer
from tests.support.samples import SMALL
from zh_rnn_encoder.client import EncoderClient
from zh_rnn_encoder.transport.config import ServerConfig
from zh_rnn_encoder.transport.serving_state import ADMIT_AFTER_SIGNAL_S

BIN = Path(sys.executable).parent
K8S = ROOT / "deploy" / "kubernetes"


def manifests() -> dict[str, dict]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted(K8S.glob("*.yaml"))]
    return {d["kind"]: d for d in docs}


def test_dockerfile_lints_clean() -> None:
    r = subprocess.run([BIN / "hadolint", ROOT / "Dockerfile"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_manifests_validate_against_the_kubernetes_schemas() -> None:
    files = [p for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"]
    cmd = [BIN / "kubernetes-validate", "--strict", *files]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count("passed") == len(files), r.stdout + r.stderr


def test_manifests_match_the_server() -> None:
    m = manifests()
    pod = m["Deployment"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    docker = (ROOT / "Dockerfile").read_text()
    port = int(re.search(r"LISTEN=0\.0\.0\.0:(\d+)", docker).group(1))
    assert c["ports"][0]["containerPort"] == port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == port  # grpc.health.v1: open even with tokens
    grace = float(env.get("GRACE_PERIOD_S", ServerConfig.grace_period_s))
    assert pod["terminationGracePeriodSeconds"] > grace + ADMIT_AFTER_SIGNAL_S
    assert pod["securityContext"]["runAsUser"] == 10001 and "USER 10001" in docker
    installs = re.findall(r"pip install[^\n]*", docker)
    # the runtime lockfile, hash-checked, then the project alone: no export extra, so no torch
    assert any("--require-hashes -r requirements/runtime.txt" in i for i in installs), installs
    assert all("--no-deps" in i for i in installs) and not any("torch" in i for i in installs)
    assert not re.search(r"^torch==", (ROOT / "requirements" / "runtime.txt").read_text(), re.M)
    svc = m["Service"]["spec"]
    assert svc["clusterIP"] == "None" and svc["ports"][0]["port"] == port
    mounted = {v["mountPath"] for v in c["volumeMounts"]}
    assert Path(env["TLS_CERT"]).parent.as_posix() in mounted
    assert Path(env["AUTH_TOKENS_FILE"]).parent.as_posix() in mounted
    assert set(m) >= {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}


def test_client_takes_a_dns_target_with_round_robin(bundle_factory, jieba_cache) -> None:
    srv = InProcessServer(bundle_factory(cell="gru", **SMALL)[0], jieba_cache).load()
    try:
        with EncoderClient(f"dns:///localhost:{srv.port}") as c:  # resolves to ::1 and 127.0.0.1
            assert all(c.encode(["你好"])[0].tokens == ["你好"] for _ in range(5))
    finally:
        srv.stop()
