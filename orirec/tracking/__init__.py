"""MLflow tracking (DESIGN §3, layer 4): rank 0 only, a no-op when disabled, never stopping the work."""

from orirec.tracking.mlflow_tracker import (
    Tracker,
    default_tracking_uri,
    flatten,
    quiet_mlflow,
    resolve_tracking_uri,
    set_verbose,
)

__all__ = ["Tracker", "default_tracking_uri", "flatten", "quiet_mlflow", "resolve_tracking_uri", "set_verbose"]
