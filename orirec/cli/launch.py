"""``orirec launch``: run a pipeline file on a Ray cluster (Jobs API) or on Kubernetes (a KubeRay RayJob)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import user_errors


def launch(
    pipeline: Annotated[Path, typer.Argument(help="pipeline YAML inside this checkout (pipelines/*.yaml)")],
    ray_address: Annotated[
        str | None, typer.Option(help="Ray dashboard address of a running cluster, e.g. http://HOST:8265")
    ] = None,
    kubernetes: Annotated[
        bool, typer.Option("--kubernetes", help="render a KubeRay RayJob and kubectl apply it")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="with --kubernetes: write the manifest, apply nothing")
    ] = False,
    profile: Annotated[str, typer.Option(help="with --kubernetes: cluster shape, cpu or gpu")] = "cpu",
    image: Annotated[
        str | None, typer.Option(help="container image (default ghcr.io/orirec/orirec:<ver>-<cpu|cuda>)")
    ] = None,
    namespace: Annotated[str, typer.Option(help="with --kubernetes: namespace")] = "default",
    storage: Annotated[
        str | None, typer.Option(help="object-storage prefix for stage outputs, e.g. s3://bucket/orirec/runs")
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI the job logs to")] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="with --dry-run: write the manifest here (default stdout)")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override any pipeline key (repeatable)")] = None,
    out: Annotated[
        str | None,
        typer.Option("--out", "-o", help="with --ray-address: run folder on the cluster (default runs/<name>)"),
    ] = None,
    follow: Annotated[bool, typer.Option(help="with --ray-address: stream the job's log until it ends")] = True,
    secret: Annotated[
        str | None,
        typer.Option(
            help="with --kubernetes: an existing Secret with the Ray token (key auth_token) and any credentialed "
            "URI; default: generate <job>-secret with a random token"
        ),
    ] = None,
    secret_manifest: Annotated[
        Path | None,
        typer.Option(help="with --dry-run: write the generated Secret here (mode 600; keep it out of git)"),
    ] = None,
    operator_namespace: Annotated[
        str | None, typer.Option(help="with --kubernetes: the KubeRay operator's namespace (NetworkPolicy)")
    ] = None,
) -> None:
    """Submit a pipeline to a Ray cluster, or render / apply a KubeRay RayJob for it.

    Example: orirec launch pipelines/demo.yaml --ray-address http://127.0.0.1:8265
             orirec launch pipelines/paper-5j0n.yaml --kubernetes --profile gpu --dry-run --manifest job.yaml
    """
    import os
    import secrets
    import shlex

    from orirec.config import parse_set
    from orirec.config.secrets import redact_setting, redact_uri
    from orirec.launch.kuberay import (
        LaunchOptions,
        comment_text,
        render_job,
        render_secret,
        secret_name,
        secret_values,
        to_yaml,
    )
    from orirec.launch.submit import checkout_root, kubectl_apply, launch_ray, relative_pipeline
    from orirec.pipeline.spec import load_pipeline

    with user_errors():
        sets = list(set_ or [])
        if tracking_uri:
            sets.append(f"tracking.uri={tracking_uri}")
        spec = load_pipeline(pipeline, parse_set(sets))  # fail here, not on the cluster
        if kubernetes == (ray_address is not None):
            raise ValueError("give exactly one of --ray-address URL and --kubernetes")
        if ray_address is not None:
            run_dir = out or str((Path("runs") / spec.name).resolve())
            job_id, status = launch_ray(pipeline, ray_address, run_dir, sets, follow=follow, echo=typer.echo)
            typer.echo(f"Ray job {job_id}: {status}")
            if status not in ("SUCCEEDED", "PENDING"):
                raise typer.Exit(1)
            return
        rel = relative_pipeline(pipeline, checkout_root())
        for flag, value in (("--storage", storage), ("--tracking-uri", tracking_uri)):
            if value is not None and comment_text(value) != value:
                raise ValueError(f"{flag}: a URI cannot hold line breaks or control characters")
        opts = LaunchOptions(
            profile=profile,
            image=image,
            namespace=namespace,
            storage_uri=storage,
            tracking_uri=tracking_uri,
            overrides=list(set_ or []),
            secret=secret,
            operator_namespace=operator_namespace,
        )
        # the header repeats the command, its values quoted and with URI credentials masked (to_yaml escapes
        # line breaks): nothing given on the command line can add YAML, nor leak a secret, through it
        args = ["orirec", "launch", rel, "--kubernetes", "--dry-run", "--profile", profile]
        args += ["--storage", redact_uri(storage)] if storage else []
        args += ["--tracking-uri", redact_uri(tracking_uri)] if tracking_uri else []
        for s in set_ or []:
            args += ["--set", redact_setting(s)]
        args += ["--secret", secret] if secret else []
        args += ["--operator-namespace", operator_namespace] if operator_namespace else []
        name = secret_name(spec.name, opts)
        keys = ", ".join(["auth_token", *secret_values(spec.name, opts)])
        header = (
            f"KubeRay RayJob and NetworkPolicy for {rel} (profile {profile}), rendered by orirec/launch/kuberay.py;"
            f" regenerate:\n{comment_text(shlex.join(args))} --manifest FILE\n"
            f"Needs the Secret {name} (keys: {keys}): orirec launch without --dry-run creates it"
        )
        text = to_yaml(render_job(rel, spec.name, opts), header=header)
        generated = None if secret else to_yaml(render_secret(spec.name, opts, secrets.token_urlsafe(32)))
        if dry_run:
            if manifest is None:
                typer.echo(text, nl=False)
            else:
                manifest.write_text(text)
                typer.echo(f"wrote {manifest}")
            if generated is not None and secret_manifest is not None:
                fd = os.open(secret_manifest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(generated)
                typer.echo(f"wrote {secret_manifest} (the Secret {name}; keep it private)", err=True)
            elif generated is not None:
                typer.echo(
                    f"note: create the Secret {name} (keys: {keys}) before applying, or pass --secret-manifest FILE",
                    err=True,
                )
            return
        typer.echo(kubectl_apply((generated + "---\n" if generated else "") + text))
