"""Render a KubeRay ``RayJob`` (ray.io/v1) that runs a pipeline file with ``orirec run`` on a fresh Ray cluster.

The manifest is plain data (dicts), rendered deterministically from the pipeline path and a profile:
``cpu`` (a head plus a CPU worker group) or ``gpu`` (a head plus a worker group of one NVIDIA GPU per pod).
The head's Ray advertises 0 CPUs (and 0 GPUs): the pipeline's driver (simulate, train with one worker,
recover, reconstruct, evaluate run in-process) owns the head pod's CPUs and, in the gpu profile, its GPU;
Ray actors and Ray Train workers (``num_workers`` > 1) go to the worker groups.
Pods run as a non-root user under the RuntimeDefault seccomp profile, without a service-account token.

Security (issue 20): the Ray head listens on all interfaces (the submitter pod and the KubeRay operator reach
its dashboard), so the cluster runs with Ray token authentication (``RAY_AUTH_MODE=token``, the token from
the key ``auth_token`` of a Kubernetes Secret, given both as ``authOptions.secretName`` and as
``RAY_AUTH_TOKEN`` env of every Ray and submitter container), and a NetworkPolicy admits ingress to the job's
pods only from the job's own pods (and the KubeRay operator, on the dashboard port). Secret values never
appear in the rendered manifest: a URI with credentials (``user:pass@``, ``X-Amz-Signature=``, ``token=``, ...)
reaches the job through the same Secret (``MLFLOW_TRACKING_URI``, ``ORIREC_STORAGE_URI``, ``ORIREC_SET_<n>``
env vars; the entrypoint names them as ``${ORIREC_...}`` and :func:`expand_env_args` fills them in on the
head), and comments show it redacted.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from orirec import __version__
from orirec.config.secrets import has_credentials

RAY_VERSION = "2.60.0"  # keep equal to the ray pin in pyproject.toml and docker/ (a test checks)
IMAGE_REPO = "ghcr.io/orirec/orirec"
APP_DIR = "/app"  # where docker/Dockerfile.* put the checkout (pipelines/ included)
RUN_ROOT = "/tmp/orirec-runs"  # the head pod's scratch run folder (durable outputs go to object storage)
UID = 1000
AUTH_TOKEN_KEY = "auth_token"  # the Secret key KubeRay's authOptions.secretName expects (RAY_AUTH_TOKEN_SECRET_KEY)
DASHBOARD_PORT = 8265
OPERATOR_LABELS = {"app.kubernetes.io/component": "kuberay-operator"}  # the KubeRay operator pod's label
STORAGE_ENV = "ORIREC_STORAGE_URI"


@dataclass(frozen=True)
class GroupResources:
    """Requests (= limits, so pods are Guaranteed QoS) of one pod: CPUs, memory (GiB), GPUs."""

    cpu: int
    memory_gib: int
    gpu: int = 0

    def k8s(self) -> dict[str, dict[str, str]]:
        """``resources`` of a container."""
        res = {"cpu": str(self.cpu), "memory": f"{self.memory_gib}Gi"}
        if self.gpu:
            res["nvidia.com/gpu"] = str(self.gpu)
        return {"requests": dict(res), "limits": dict(res)}


@dataclass(frozen=True)
class Profile:
    """Head and worker-group sizes of one cluster shape."""

    name: str
    head: GroupResources
    worker: GroupResources
    replicas: int = 2
    max_replicas: int = 8
    image_flavour: str = "cpu"
    overrides: tuple[str, ...] = ()  # --set of every pipeline run on this shape


PROFILES: dict[str, Profile] = {
    "cpu": Profile("cpu", head=GroupResources(4, 16), worker=GroupResources(8, 32)),
    "gpu": Profile(
        "gpu",
        head=GroupResources(8, 48, gpu=1),
        worker=GroupResources(8, 48, gpu=1),
        replicas=1,
        max_replicas=4,
        image_flavour="cuda",
        overrides=("simulate.device=cuda",),  # training still runs on the CPU: TrainConfig has no device yet
    ),
}


@dataclass
class LaunchOptions:
    """What the manifest needs beyond the pipeline: image, storage, tracking, overrides."""

    profile: str = "cpu"
    image: str | None = None
    namespace: str = "default"
    storage_uri: str | None = None  # e.g. s3://bucket/orirec/runs — stage outputs go to <storage_uri>/<run>/...
    tracking_uri: str | None = None  # e.g. http://mlflow.mlflow.svc:5000
    storage_secret: str = "orirec-object-storage"  # optional Secret with AWS_* / GOOGLE_* credentials
    overrides: list[str] = field(default_factory=list)  # --set key=value for orirec run
    secret: str | None = None  # Secret with auth_token (+ credentialed URIs); default <job name>-secret
    operator_namespace: str | None = None  # the KubeRay operator's namespace (None: the operator pod in any)

    def image_ref(self) -> str:
        """The container image (default ``ghcr.io/orirec/orirec:<version>-<cpu|cuda>``)."""
        return self.image or f"{IMAGE_REPO}:{__version__}-{profile(self.profile).image_flavour}"


def profile(name: str) -> Profile:
    """The named cluster profile (cpu, gpu)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def k8s_name(run_name: str) -> str:
    """A DNS-1123 name for the RayJob (lower case, ``-`` separated, at most 40 characters)."""
    s = "".join(c if c.isalnum() else "-" for c in run_name.lower()).strip("-")
    s = "-".join(p for p in s.split("-") if p)[:40].strip("-")
    if not s:
        raise ValueError(f"run name {run_name!r} gives an empty Kubernetes name")
    return f"orirec-{s}"


# ---- secrets in URIs (masking lives in orirec.config.secrets) --------------------------------------------

_ENV_REF = re.compile(r"\$\{(ORIREC_[A-Z0-9_]+)\}")
# line breaks YAML (1.1, PyYAML) knows, and the other control characters: never raw in a comment
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def comment_text(text: str) -> str:
    """``text`` safe inside a one-line YAML comment: line breaks and control characters become escapes."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


def secret_values(run_name: str, opts: LaunchOptions) -> dict[str, str]:
    """The values that must reach the job through the Secret rather than the manifest (credentialed URIs),
    by env var name."""
    out: dict[str, str] = {}
    if opts.tracking_uri and has_credentials(opts.tracking_uri):
        out["MLFLOW_TRACKING_URI"] = opts.tracking_uri
    if opts.storage_uri and has_credentials(opts.storage_uri):
        out[STORAGE_ENV] = opts.storage_uri.rstrip("/")
    for i, s in enumerate(opts.overrides):
        key, eq, value = s.partition("=")
        if eq and has_credentials(value):
            out[f"ORIREC_SET_{i}"] = value
    return out


def secret_name(run_name: str, opts: LaunchOptions) -> str:
    """The Secret holding the Ray token (key ``auth_token``) and the credentialed URIs."""
    return opts.secret or f"{k8s_name(run_name)}-secret"


def render_secret(run_name: str, opts: LaunchOptions, token: str) -> dict[str, Any]:
    """The Secret :func:`render_rayjob`'s manifest refers to: ``token`` and :func:`secret_values`.
    Keep it out of version control (``orirec launch`` applies it without printing it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(run_name, opts), "namespace": opts.namespace, "labels": _labels(run_name)},
        "type": "Opaque",
        "stringData": {AUTH_TOKEN_KEY: token, **secret_values(run_name, opts)},
    }


def expand_env_args(args: list[str]) -> list[str]:
    """``args`` with every ``${ORIREC_...}`` replaced by that env var (set on the pods from the job's Secret): how
    credentialed URIs reach ``orirec run`` without being written into the RayJob. SystemExit naming a missing one.
    The pods run it through :func:`orirec.cli.app.expand_env_main`."""
    import os

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            raise SystemExit(f"orirec: env var {m.group(1)} is not set (it comes from the job's Secret)")
        return os.environ[m.group(1)]

    return [_ENV_REF.sub(sub, a) for a in args]


# ---- the manifest -----------------------------------------------------------------------------------------


def entrypoint(pipeline: str, run_name: str, opts: LaunchOptions) -> str:
    """The ``orirec run`` command line the RayJob executes on the head pod.

    Credentialed values (see :func:`secret_values`) appear as ``${ORIREC_...}`` references, which
    :func:`expand_env_args` resolves on the head (the arguments stay single-quoted through the submitter's
    shell, ``ray job submit`` and the head's shell, so no shell expands them on the way).
    """
    hidden = secret_values(run_name, opts)
    sets = list(profile(opts.profile).overrides)
    for i, s in enumerate(opts.overrides):
        sets.append(f"{s.partition('=')[0]}=${{ORIREC_SET_{i}}}" if f"ORIREC_SET_{i}" in hidden else s)
    if opts.storage_uri:
        root = f"${{{STORAGE_ENV}}}" if STORAGE_ENV in hidden else opts.storage_uri.rstrip("/")
        for key, folder in storage_layout().items():
            sets.append(f"paths.{key}={root}/{run_name}/{folder}")
    prog = ["orirec"]
    if any(k != "MLFLOW_TRACKING_URI" for k in hidden):
        prog = ["python", "-c", "from orirec.cli.app import expand_env_main; expand_env_main()"]
    args = [*prog, "run", pipeline, "--out", f"{RUN_ROOT}/{run_name}", "--no-progress"]
    for s in sets:
        args += ["--set", s]
    return shlex.join(args)


def storage_layout() -> dict[str, str]:
    """Object-storage folder of each ``paths`` key under ``<storage_uri>/<run>/``."""
    from orirec.pipeline.spec import PipelinePaths

    return {k: f.default for k, f in PipelinePaths.model_fields.items()}


def _labels(run_name: str) -> dict[str, str]:
    """Labels of everything one job renders; ``orirec/job`` is what the NetworkPolicy selects on."""
    return {"app.kubernetes.io/name": "orirec", "orirec/job": k8s_name(run_name)}


def _secret_env(name: str, secret: str, key: str | None = None) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key or name}}}


def _auth_env(secret: str) -> list[dict[str, Any]]:
    """Ray token auth: the mode, and the token from the Secret (KubeRay adds neither when already set)."""
    return [{"name": "RAY_AUTH_MODE", "value": "token"}, _secret_env("RAY_AUTH_TOKEN", secret, AUTH_TOKEN_KEY)]


def _env(run_name: str, opts: LaunchOptions) -> list[dict[str, Any]]:
    secret = secret_name(run_name, opts)
    hidden = secret_values(run_name, opts)
    env = [
        {"name": "OMP_WAIT_POLICY", "value": "PASSIVE"},
        {"name": "MPLBACKEND", "value": "Agg"},
        {"name": "HOME", "value": "/tmp"},
        *_auth_env(secret),
    ]
    if opts.tracking_uri and "MLFLOW_TRACKING_URI" not in hidden:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": opts.tracking_uri})
    env += [_secret_env(k, secret) for k in hidden]
    return env


_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_template(
    container: str, image: str, res: GroupResources, opts: LaunchOptions, head: bool, run_name: str = "job"
) -> dict[str, Any]:
    """Pod template of the head or a worker: one Ray container, non-root, seccomp RuntimeDefault, no
    service-account token, resources, env (Ray token and credentialed URIs from the job's Secret)."""
    c: dict[str, Any] = {
        "name": container,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "workingDir": APP_DIR,
        "resources": res.k8s(),
        "env": _env(run_name, opts),
        "envFrom": [{"secretRef": {"name": opts.storage_secret, "optional": True}}],
        "securityContext": dict(_CONTAINER_SECURITY),
        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}],
    }
    if head:
        c["ports"] = [
            {"containerPort": 6379, "name": "gcs"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
        ]
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": _pod_security(),
        "containers": [c],
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}},
        ],
    }
    if res.gpu:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"metadata": {"labels": _labels(run_name)}, "spec": spec}


def submitter_template(image: str, run_name: str, opts: LaunchOptions) -> dict[str, Any]:
    """The K8sJobMode submitter pod (``ray job submit``; KubeRay fills in the command): hardened like the Ray
    pods, labelled for the NetworkPolicy, with the Ray token."""
    res = {"cpu": "1", "memory": "1Gi"}
    c = {
        "name": "ray-job-submitter",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": dict(res), "limits": dict(res)},
        "env": [{"name": "HOME", "value": "/tmp"}, *_auth_env(secret_name(run_name, opts))],
        "securityContext": dict(_CONTAINER_SECURITY),
    }
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": _pod_security(),
        "containers": [c],
    }
    return {"metadata": {"labels": _labels(run_name)}, "spec": spec}


def render_network_policy(run_name: str, opts: LaunchOptions) -> dict[str, Any]:
    """Ingress to the job's pods (Ray head, workers, submitter: label ``orirec/job``) only from the job's own
    pods, plus the KubeRay operator on the dashboard port (it polls the job's status there). Kubelet probes
    from the pod's node are always allowed by NetworkPolicy."""
    operator: dict[str, Any] = {"podSelector": {"matchLabels": dict(OPERATOR_LABELS)}}
    operator["namespaceSelector"] = (
        {"matchLabels": {"kubernetes.io/metadata.name": opts.operator_namespace}} if opts.operator_namespace else {}
    )
    job = {"orirec/job": k8s_name(run_name)}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{k8s_name(run_name)}-ingress", "namespace": opts.namespace, "labels": _labels(run_name)},
        "spec": {
            "podSelector": {"matchLabels": dict(job)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": dict(job)}}]},
                {"from": [operator], "ports": [{"protocol": "TCP", "port": DASHBOARD_PORT}]},
            ],
        },
    }


def render_rayjob(pipeline: str, run_name: str, opts: LaunchOptions) -> dict[str, Any]:
    """The RayJob manifest that runs ``orirec run <pipeline>`` (a path inside the image, e.g. pipelines/demo.yaml)."""
    prof = profile(opts.profile)
    image = opts.image_ref()
    worker_group = f"{prof.name}-workers"
    ray_params = {"num-gpus": str(prof.worker.gpu)} if prof.worker.gpu else {}
    head_params = {"num-gpus": "0"} if prof.head.gpu else {}  # the head's GPU is the driver's, not Ray's
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {
            "name": k8s_name(run_name),
            "namespace": opts.namespace,
            "labels": {**_labels(run_name), "orirec/profile": prof.name},
        },
        "spec": {
            "entrypoint": entrypoint(pipeline, run_name, opts),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 3600,
            "submissionMode": "K8sJobMode",
            "backoffLimit": 0,
            "submitterPodTemplate": submitter_template(image, run_name, opts),
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                "authOptions": {"mode": "token", "secretName": secret_name(run_name, opts)},
                "headGroupSpec": {
                    "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0", **head_params},
                    "template": pod_template("ray-head", image, prof.head, opts, True, run_name),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": worker_group,
                        "replicas": prof.replicas,
                        "minReplicas": 0,
                        "maxReplicas": prof.max_replicas,
                        "rayStartParams": {"num-cpus": str(prof.worker.cpu), **ray_params},
                        "template": pod_template("ray-worker", image, prof.worker, opts, False, run_name),
                    }
                ],
            },
        },
    }


def render_job(pipeline: str, run_name: str, opts: LaunchOptions) -> list[dict[str, Any]]:
    """Everything to apply for one job except its Secret: the NetworkPolicy and the RayJob."""
    return [render_network_policy(run_name, opts), render_rayjob(pipeline, run_name, opts)]


def to_yaml(manifest: dict[str, Any] | list[dict[str, Any]], header: str | None = None) -> str:
    """The manifest (or several, as a multi-document stream) as YAML (keys in insertion order) through
    ``yaml.safe_dump``, with an optional comment header (each line made comment-safe)."""
    docs = manifest if isinstance(manifest, list) else [manifest]
    body = yaml.safe_dump_all(docs, sort_keys=False, width=120)
    head = "".join(f"# {comment_text(line.removeprefix('#').lstrip())}\n" for line in (header or "").splitlines())
    return head + body
