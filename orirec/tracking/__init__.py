"""MLflow tracking (DESIGN §3, layer 4): rank 0 only, a no-op when disabled."""

from orirec.tracking.mlflow_tracker import Tracker, default_tracking_uri, flatten

__all__ = ["Tracker", "default_tracking_uri", "flatten"]
