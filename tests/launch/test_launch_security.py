"""Cluster security (issue 20): Ray token auth, hardened pods, a NetworkPolicy, no YAML injection through the
manifest's comment header, and no credentials in what ``orirec launch --kubernetes`` renders."""

from __future__ import annotations

import http.server
import json
import os
import shlex
import subprocess
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orirec.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "type", "stringData"}
AWS_KEY, AWS_SECRET = "AKIAEXAMPLEKEY", "wJalrXUtnFEMIK7MDENG"
MLFLOW_PASSWORD, SIGNATURE = "hunter2pw", "deadbeefsig"


def _launch(tmp_path: Path, *args: str) -> tuple[str, list[dict]]:
    """``orirec launch pipelines/demo.yaml --kubernetes --dry-run ARGS``: the manifest's text and documents."""
    out = tmp_path / "job.yaml"
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        r = CliRunner().invoke(
            app, ["launch", "pipelines/demo.yaml", "--kubernetes", "--dry-run", *args, "--manifest", str(out)]
        )
    finally:
        os.chdir(cwd)
    assert r.exit_code == 0, r.output
    text = out.read_text()
    return text, [d for d in yaml.safe_load_all(text) if d is not None]


def _by_kind(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, got {[d.get('kind') for d in docs]}"
    return found[0]


def _pod_templates(rayjob: dict) -> dict[str, dict]:
    cluster = rayjob["spec"]["rayClusterSpec"]
    pods = {"head": cluster["headGroupSpec"]["template"]}
    pods.update({g["groupName"]: g["template"] for g in cluster["workerGroupSpecs"]})
    if "submitterPodTemplate" in rayjob["spec"]:
        pods["submitter"] = rayjob["spec"]["submitterPodTemplate"]
    return pods


# ---- 1. the comment header cannot inject YAML ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--set", 'tracking.experiment="x\nevil: 1"'],  # valid YAML for parse_set, a line break for the header
        ["--set", 'tracking.experiment="x\u2028evil: 1"'],  # a line break to YAML 1.1 as well
        ["--set", 'tracking.experiment="x\u0085evil: 1"'],
    ],
)
def test_overrides_cannot_inject_keys_through_the_header(tmp_path, args):
    text, docs = _launch(tmp_path, *args)
    assert docs and all(set(d) <= TOP_LEVEL for d in docs), [sorted(d) for d in docs]
    first = next(i for i, line in enumerate(text.splitlines()) if not line.startswith("#"))
    assert text.splitlines()[first].startswith("apiVersion:"), "the header must be comment lines only"
    # the override still reaches the job, through the YAML body (yaml.safe_dump), intact
    rayjob = _by_kind(docs, "RayJob")
    assert "evil: 1" in " ".join(shlex.split(rayjob["spec"]["entrypoint"]))


def test_a_uri_with_a_line_break_is_refused(tmp_path):
    r = CliRunner().invoke(
        app,
        ["launch", str(ROOT / "pipelines/demo.yaml"), "--kubernetes", "--dry-run", "--storage", "s3://b/r\nevil: 1"],
    )
    assert r.exit_code == 2 and "line breaks" in r.output


# ---- 2. credentials in URIs never reach the rendered manifest ---------------------------------------------


def test_credentials_in_uris_are_not_rendered_but_reach_the_job_through_the_secret(tmp_path):
    storage = f"s3://{AWS_KEY}:{AWS_SECRET}@orirec-runs/runs"
    tracking = f"https://alice:{MLFLOW_PASSWORD}@mlflow.example.org/?X-Amz-Signature={SIGNATURE}&region=eu"
    text, _ = _launch(tmp_path, "--storage", storage, "--tracking-uri", tracking)
    for secret in (AWS_KEY, AWS_SECRET, MLFLOW_PASSWORD, SIGNATURE):
        assert secret not in text
    assert "s3://***@orirec-runs/runs" in text and "X-Amz-Signature=***&region=eu" in text  # redacted, in the header

    secret_file = tmp_path / "secret.yaml"
    args = ["--storage", storage, "--tracking-uri", tracking, "--secret-manifest", str(secret_file)]
    text, docs = _launch(tmp_path, *args)
    assert not any(secret in text for secret in (AWS_KEY, AWS_SECRET, MLFLOW_PASSWORD, SIGNATURE))

    # the real values travel in the Secret (written with mode 600), referenced by name from the pods
    assert secret_file.stat().st_mode & 0o077 == 0
    secret = yaml.safe_load(secret_file.read_text())
    assert secret["kind"] == "Secret"
    assert secret["stringData"]["ORIREC_STORAGE_URI"] == storage
    assert secret["stringData"]["MLFLOW_TRACKING_URI"] == tracking
    assert len(secret["stringData"]["auth_token"]) >= 32
    rayjob = _by_kind(docs, "RayJob")
    for name, pod in _pod_templates(rayjob).items():
        if name == "submitter":
            continue
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        for key in ("ORIREC_STORAGE_URI", "MLFLOW_TRACKING_URI"):
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": key}
    entry = rayjob["spec"]["entrypoint"]
    assert "paths.store=${ORIREC_STORAGE_URI}/demo/projections.zarr" in entry and "expand_env_main" in entry


def test_env_references_survive_the_shells_and_are_filled_in_on_the_head(tmp_path, monkeypatch):
    from orirec.cli.app import expand_env_main
    from orirec.launch.kuberay import LaunchOptions, entrypoint

    entry = entrypoint("pipelines/demo.yaml", "demo", LaunchOptions(storage_uri=f"s3://{AWS_KEY}:{AWS_SECRET}@b/r"))
    assert AWS_SECRET not in entry
    # submitter: bash runs `ray job submit -- <entry>`; Ray shlex.joins the arguments; the head's shell runs that
    env = {**os.environ, "ORIREC_STORAGE_URI": "s3://expanded-too-early"}
    args = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {entry}"], env=env, capture_output=True, text=True, check=True
    ).stdout.split("\0")[:-1]
    args = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {shlex.join(args)}"], env=env, capture_output=True, text=True, check=True
    ).stdout.split("\0")[:-1]
    assert "--set" in args and "paths.store=${ORIREC_STORAGE_URI}/demo/projections.zarr" in args

    seen = []
    monkeypatch.setattr("orirec.cli.app.main", lambda: seen.append(list(__import__("sys").argv)))
    monkeypatch.setenv("ORIREC_STORAGE_URI", "s3://K:S@b/r")
    monkeypatch.setattr("sys.argv", ["-c", *args[3:]])
    expand_env_main()
    assert "paths.store=s3://K:S@b/r/demo/projections.zarr" in seen[0]
    monkeypatch.delenv("ORIREC_STORAGE_URI")
    monkeypatch.setattr("sys.argv", ["-c", *args[3:]])
    with pytest.raises(SystemExit, match="ORIREC_STORAGE_URI is not set"):
        expand_env_main()


def test_redact_uri():
    from orirec.config.secrets import has_credentials, redact_setting, redact_uri

    assert redact_uri("s3://KEY:SEC/RET@bucket/p") == "s3://***@bucket/p"
    assert redact_uri("http://user@host:5000/x") == "http://***@host:5000/x"
    assert redact_uri("https://h/o?X-Amz-Credential=a&X-Amz-Signature=b&x=1") == (
        "https://h/o?X-Amz-Credential=***&X-Amz-Signature=***&x=1"
    )
    assert redact_uri("https://h/?token=t&password=p&sig=s#f") == "https://h/?token=***&password=***&sig=***#f"
    for plain in ("s3://bucket/runs", "http://mlflow.mlflow.svc:5000", "runs/demo", "file:///a/b"):
        assert redact_uri(plain) == plain and not has_credentials(plain)
    assert redact_setting("tracking.uri=http://u:p@h") == "tracking.uri=http://***@h"


# ---- 3. token auth, hardened pods, NetworkPolicy ------------------------------------------------------


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_token_auth_hardened_pods_and_network_policy(tmp_path, profile):
    _, docs = _launch(tmp_path, "--profile", profile, "--storage", "s3://b/r")
    rayjob = _by_kind(docs, "RayJob")
    policy = _by_kind(docs, "NetworkPolicy")
    cluster = rayjob["spec"]["rayClusterSpec"]
    secret = cluster["authOptions"]["secretName"]
    assert cluster["authOptions"] == {"mode": "token", "secretName": secret}

    pods = _pod_templates(rayjob)
    assert {"head", "submitter"} <= set(pods) and len(pods) >= 3
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for name, pod in pods.items():
        spec = pod["spec"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token", name
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "auth_token"}, name
        assert selector.items() <= pod["metadata"]["labels"].items(), f"{name} is outside the NetworkPolicy"

    # ingress only from the job's own pods, and the KubeRay operator on the dashboard port
    assert policy["apiVersion"] == "networking.k8s.io/v1" and policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["metadata"]["namespace"] == rayjob["metadata"]["namespace"]
    own, operator = policy["spec"]["ingress"]
    assert own == {"from": [{"podSelector": {"matchLabels": selector}}]}
    assert operator["ports"] == [{"protocol": "TCP", "port": 8265}]
    assert operator["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": "kuberay-operator"}

    kv = pytest.importorskip("kubernetes_validate")
    for pod in pods.values():
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t", **pod["metadata"]}, "spec": pod["spec"]}
        kv.validate(doc, kv.latest_version(), strict=True)
    kv.validate(policy, kv.latest_version(), strict=True)


def test_operator_namespace_narrows_the_policy(tmp_path):
    _, docs = _launch(tmp_path, "--operator-namespace", "kuberay-system", "--secret", "my-ray-token")
    policy = _by_kind(docs, "NetworkPolicy")
    peer = policy["spec"]["ingress"][1]["from"][0]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "kuberay-system"}}
    assert _by_kind(docs, "RayJob")["spec"]["rayClusterSpec"]["authOptions"]["secretName"] == "my-ray-token"


def test_generated_secret_validates():
    from orirec.launch.kuberay import LaunchOptions, render_secret

    kv = pytest.importorskip("kubernetes_validate")
    doc = render_secret("demo", LaunchOptions(tracking_uri="http://u:p@h"), "tok")
    kv.validate(doc, kv.latest_version(), strict=True)
    assert doc["stringData"] == {"auth_token": "tok", "MLFLOW_TRACKING_URI": "http://u:p@h"}


# ---- 4. --ray-address sends the token from the environment ------------------------------------------------


@pytest.fixture
def token_dashboard():
    """A stand-in Ray dashboard that wants ``Bearer s3cr3t`` (401 without a token, 403 with a wrong one)."""
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            auth = self.headers.get("Authorization")
            seen.append(auth)
            if auth != "Bearer s3cr3t":
                self.send_response(401 if auth is None else 403)
                self.end_headers()
                self.wfile.write(b"Unauthorized: Missing authentication token")
                return
            body = json.dumps({"version": "4", "ray_version": "2.60.0", "ray_commit": "x", "session_name": "s"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


def test_launch_ray_sends_the_token_from_the_environment(token_dashboard, monkeypatch):
    pytest.importorskip("ray")
    import orirec.distributed.jobs as jobs
    from orirec.launch.submit import launch_ray

    address, seen = token_dashboard

    def fake_submit(address, entry, *args, **kwargs):
        jobs._client(address)  # Ray's JobSubmissionClient: its first request already needs the token
        return "raysubmit_test"

    monkeypatch.setattr(jobs, "submit_job", fake_submit)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cr3t")
    lines: list[str] = []
    overrides = [f"tracking.uri=https://alice:{MLFLOW_PASSWORD}@mlflow.example.org"]
    job_id, status = launch_ray(
        ROOT / "pipelines/demo.yaml", address, "/tmp/x", overrides, follow=False, echo=lines.append
    )
    assert (job_id, status) == ("raysubmit_test", "PENDING")
    assert "Bearer s3cr3t" in seen
    assert "RAY_AUTH_MODE" not in os.environ  # switched on for the submission only
    assert lines and MLFLOW_PASSWORD not in "\n".join(lines) and "https://***@mlflow.example.org" in lines[0]

    # an explicit RAY_AUTH_MODE=disabled is respected: no token goes out
    seen.clear()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(ValueError, match="wants a token"):
        launch_ray(ROOT / "pipelines/demo.yaml", address, "/tmp/x", [], follow=False, echo=lines.append)
    assert seen and seen[-1] is None
