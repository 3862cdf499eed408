"""Orientation estimators behind one interface, for ``orirec compare`` (layer 3; see :mod:`.base`).

Registered names: siamese, euclidean, oracle, oracle-noise, regress-6d, regress-quat, regress-euler, cvae,
aspire-cl (needs ``pip install orirec[aspire]``), ab-initio.
"""

from orirec.estimators import aspire_cl, cvae, euclidean, oracle, regression, siamese  # noqa: F401
from orirec.estimators.ab_initio import estimator as _ab_initio  # noqa: F401
from orirec.estimators.base import (
    ESTIMATORS,
    DistanceEstimator,
    Estimator,
    EstimatorData,
    EstimatorOptions,
    OrientationEstimator,
    TrainingData,
    estimator_names,
    make_estimator,
    register,
)

__all__ = [
    "ESTIMATORS",
    "DistanceEstimator",
    "Estimator",
    "EstimatorData",
    "EstimatorOptions",
    "OrientationEstimator",
    "TrainingData",
    "estimator_names",
    "make_estimator",
    "register",
]
