"""Starting or joining Ray: the one place that calls ``ray.init`` (never at import)."""

from __future__ import annotations

import os


def ensure_ray(num_cpus: int | None = None, address: str | None = None) -> None:
    """Start (or connect to) Ray once; a local cluster of this machine by default."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            log_to_driver=True,
            object_store_memory=256 * 1024**2,
        )
