"""Ab initio orientation search: stochastic projection matching from a random start with restarts
(:mod:`.search`), a consensus of restarts (:mod:`.consensus`), a per-restart checkpoint (:mod:`.checkpoint`) and
the estimator behind ``orirec compare --estimators ab-initio`` (:mod:`.estimator`)."""

from orirec.estimators.ab_initio.search import (
    AbInitioResult,
    ab_initio,
    check_particle_size,
    estimate_particle_radius_A,
)

__all__ = ["AbInitioResult", "ab_initio", "check_particle_size", "estimate_particle_radius_A"]
