"""Every way orirec gets orientations, behind one interface (:class:`Estimator`; see :mod:`.base`).

Registered names (each with its typed config in :mod:`orirec.config.estimators`): siamese, euclidean, oracle,
oracle-noise (distance estimators, recovered and gauge-resolved by :func:`orirec.recover.solve.solve_orientations`),
regress-6d, regress-quat, regress-euler, cvae, aspire-cl (needs ``pip install orirec[aspire]``), ab-initio,
relion-sgd (needs RELION 3.1's ``relion_refine``), cryodrgn-abinit (needs cryoDRGN: ``make cryodrgn-env``). Local
projection-matching refinement of any of them: :mod:`.projection_matching`.
"""

from orirec.estimators import (  # noqa: F401
    aspire_cl,
    cryodrgn_abinit,
    cvae,
    euclidean,
    oracle,
    regression,
    relion_sgd,
    siamese,
)
from orirec.estimators.ab_initio import estimator as _ab_initio  # noqa: F401
from orirec.estimators.base import (
    ESTIMATORS,
    DistanceEstimator,
    Estimator,
    EstimatorData,
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
    "TrainingData",
    "estimator_names",
    "make_estimator",
    "register",
]
