"""Render a KubeRay ``RayJob`` (ray.io/v1) that runs a pipeline file with ``orirec run`` on a fresh Ray cluster.

The manifest is plain data (dicts), rendered deterministically from the pipeline path and a profile:
``cpu`` (a head plus a CPU worker group) or ``gpu`` (a head plus a worker group of one NVIDIA GPU per pod).
The head's Ray advertises 0 CPUs (and 0 GPUs): the pipeline's driver (simulate, train with one worker,
recover, reconstruct, evaluate run in-process) owns the head pod's CPUs and, in the gpu profile, its GPU;
Ray actors and Ray Train workers (``num_workers`` > 1) go to the worker groups.
Pods run as a non-root user; the MLflow tracking URI and object-storage credentials come in as env vars.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from orirec import __version__

RAY_VERSION = "2.60.0"  # keep equal to the ray pin in pyproject.toml and docker/ (a test checks)
IMAGE_REPO = "ghcr.io/orirec/orirec"
APP_DIR = "/app"  # where docker/Dockerfile.* put the checkout (pipelines/ included)
RUN_ROOT = "/tmp/orirec-runs"  # the head pod's scratch run folder (durable outputs go to object storage)
UID = 1000


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


def entrypoint(pipeline: str, run_name: str, opts: LaunchOptions) -> str:
    """The ``orirec run`` command line the RayJob executes on the head pod."""
    args = ["orirec", "run", pipeline, "--out", f"{RUN_ROOT}/{run_name}", "--no-progress"]
    sets = [*profile(opts.profile).overrides, *opts.overrides]
    if opts.storage_uri:
        base = f"{opts.storage_uri.rstrip('/')}/{run_name}"
        for key, folder in storage_layout().items():
            sets.append(f"paths.{key}={base}/{folder}")
    for s in sets:
        args += ["--set", s]
    return shlex.join(args)


def storage_layout() -> dict[str, str]:
    """Object-storage folder of each ``paths`` key under ``<storage_uri>/<run>/``."""
    from orirec.pipeline.spec import PipelinePaths

    return {k: f.default for k, f in PipelinePaths.model_fields.items()}


def _env(opts: LaunchOptions) -> list[dict[str, Any]]:
    env = [
        {"name": "OMP_WAIT_POLICY", "value": "PASSIVE"},
        {"name": "MPLBACKEND", "value": "Agg"},
        {"name": "HOME", "value": "/tmp"},
    ]
    if opts.tracking_uri:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": opts.tracking_uri})
    return env


def pod_template(container: str, image: str, res: GroupResources, opts: LaunchOptions, head: bool) -> dict[str, Any]:
    """Pod template of the head or a worker: one Ray container, non-root, resources, env, credentials."""
    c: dict[str, Any] = {
        "name": container,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "workingDir": APP_DIR,
        "resources": res.k8s(),
        "env": _env(opts),
        "envFrom": [{"secretRef": {"name": opts.storage_secret, "optional": True}}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}],
    }
    if head:
        c["ports"] = [
            {"containerPort": 6379, "name": "gcs"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
        ]
    spec: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID},
        "containers": [c],
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}},
        ],
    }
    if res.gpu:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"metadata": {"labels": {"app.kubernetes.io/name": "orirec"}}, "spec": spec}


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
            "labels": {"app.kubernetes.io/name": "orirec", "orirec/profile": prof.name},
        },
        "spec": {
            "entrypoint": entrypoint(pipeline, run_name, opts),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 3600,
            "submissionMode": "K8sJobMode",
            "backoffLimit": 0,
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                "headGroupSpec": {
                    "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0", **head_params},
                    "template": pod_template("ray-head", image, prof.head, opts, head=True),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": worker_group,
                        "replicas": prof.replicas,
                        "minReplicas": 0,
                        "maxReplicas": prof.max_replicas,
                        "rayStartParams": {"num-cpus": str(prof.worker.cpu), **ray_params},
                        "template": pod_template("ray-worker", image, prof.worker, opts, head=False),
                    }
                ],
            },
        },
    }


def to_yaml(manifest: dict[str, Any], header: str | None = None) -> str:
    """The manifest as YAML (keys in insertion order), with an optional comment header."""
    body = yaml.safe_dump(manifest, sort_keys=False, width=120)
    return (header.rstrip("\n") + "\n" if header else "") + body
