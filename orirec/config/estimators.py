"""One typed config per orientation estimator (``orirec compare``, ``orirec ab-initio``): their only defaults.

Every estimator's config reads its own fields from one flat mapping of settings (the command line's options,
e.g. ``steps`` for the regression heads and ``cvae_steps`` for the cVAE) and ignores the others, so one set of
options serves a comparison of many estimators. Field names are those options' names.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ESTIMATOR_CONFIGS",
    "AbInitioConfig",
    "AspireConfig",
    "CVAEConfig",
    "CryodrgnConfig",
    "EstimatorConfig",
    "EuclideanConfig",
    "OracleConfig",
    "RelionConfig",
    "RegressionConfig",
    "SiameseConfig",
]


class EstimatorConfig(BaseModel):
    """Settings every estimator has; unknown keys of the flat settings are other estimators' (ignored)."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    seed: int = Field(0, description="seed of every random step (training, draws, noise)")


class SiameseConfig(EstimatorConfig):
    """The method: distances of a Siamese network trained by ``orirec train``."""

    model: Path | None = Field(None, description="trained checkpoint (.pt) of `orirec train`")


class EuclideanConfig(EstimatorConfig):
    """The published baseline: calibrated Euclidean distance between normalized images."""

    euclid_box_px: int = Field(32, ge=4, description="box the images are compared at (px, Fourier down-sampled)")
    calibration_pairs: int = Field(
        200_000, ge=1, description="training pairs of the Euclidean baseline's isotonic calibration (euclidean)"
    )


class OracleConfig(EstimatorConfig):
    """Exact distances between the true orientations (the ``oracle-noise`` variant adds Gaussian noise)."""

    oracle_noise_rad: float = Field(0.1, ge=0, description="σ of the Gaussian distance noise of oracle-noise (rad)")


class _Learned(EstimatorConfig):
    batch_size: int = Field(64, ge=1, description="training batch size (images per step)")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    encoder_preset: str = Field("small", description="encoder preset: tiny, small or paper")
    downsample: int = Field(2, ge=1, description="Fourier down-sampling factor of the encoder's input")


class RegressionConfig(_Learned):
    """Direct regression heads (6D, quaternion, Euler) on an encoder, trained on a training store."""

    steps: int = Field(400, ge=1, description="training steps of each regression head (regress-*)")


class CVAEConfig(_Learned):
    """Conditional VAE: generate projections for an orientation, then search the condition."""

    cvae_steps: int = Field(1000, ge=1, description="training steps of the cVAE (cvae)")
    latent_dim: int = Field(15, ge=1, description="cVAE latent size (cvae)")
    cvae_condition: Literal["quat", "euler"] = Field("quat", description="cVAE condition: quat or euler (cvae)")
    grid_size: int = Field(4000, ge=1, description="orientations of the cVAE grid search (cvae)")
    refine_steps: int = Field(30, ge=0, description="local Adam steps on the condition after the search")


class AspireConfig(EstimatorConfig):
    """ASPIRE's common-lines synchronization (optional package ``orirec[aspire]``)."""

    aspire_method: Literal["voting", "sync3n"] = Field("voting", description="ASPIRE synchronization method")
    n_theta: int = Field(360, ge=8, description="angular sampling of the common-lines search")


class AbInitioConfig(EstimatorConfig):
    """Stochastic global projection matching from a random start, with restarts and their consensus."""

    iterations: int = Field(
        40, ge=1, description="iterations of ab-initio per run (stochastic global projection matching)"
    )
    resolution_start_A: float = Field(30.0, gt=0, description="resolution of the first iterations (Å)")
    resolution_end_A: float = Field(20.0, gt=0, description="resolution of the last iterations (Å)")
    step_deg: float = Field(15.0, gt=0, description="spacing of the global orientation grid (°)")
    sharpness_start: float = Field(1.0, gt=0, description="first inverse temperature of the draws")
    sharpness_end: float = Field(30.0, gt=0, description="last inverse temperature of the draws")
    particle_radius_A: float | None = Field(
        None, gt=0, description="particle radius (Å) for ab-initio's mask (default: read off the images)"
    )
    pad: int = Field(2, ge=1, le=4, description="Fourier padding of the reconstructions")
    wiener: float = Field(1e-2, ge=0, description="Wiener constant of the reconstructions")
    restarts: int = Field(
        6, ge=1, description="ab-initio runs from different random starts; those that agree are averaged"
    )
    consensus: bool = Field(True, description="average the restarts that agree, per image")
    checkpoint: Path | None = Field(None, description="file of finished restarts (a rerun resumes there)")
    minibatch: tuple[int, int] | None = Field(
        None,
        description="images per iteration, first and last (growing geometrically), then one pass over every image; "
        "default: every image every iteration",
    )
    max_shift_px: float | None = Field(
        None,
        ge=0,
        description="radius of the in-plane shift search (px); default: the store's recorded range, else 10 % of the "
        "box (imported particles: extracted off-centre by an unknown amount)",
    )
    symmetry: str = Field(
        "C1",
        pattern=r"^[CcDd][0-9]+$",
        description="point group imposed after the C1 restarts (Cn, Dn): the map's axes put on z (and x), then "
        "every map made with it",
    )

    subset: int = Field(
        2000,
        ge=10,
        description="images the restarts run on (a random subset); every image is then posed by one global pass "
        "against their map, and all are refined",
    )
    num_workers: int = Field(1, ge=1, description="Ray workers of the passes over every image (1: in this process)")
    device: str = Field("cpu", description="torch device of the passes: cpu, cuda, cuda:N, or auto (cuda if present)")

    #: fields that are not :func:`~orirec.estimators.ab_initio.search.ab_initio`'s own keyword arguments
    NOT_SEARCH: ClassVar[frozenset[str]] = frozenset(
        {"seed", "max_shift_px", "particle_radius_A", "subset", "num_workers", "device"}
    )

    def search_settings(self) -> dict:
        """The keyword arguments of the restarts' search (``ab_initio``) among these settings."""
        return self.model_dump(exclude=set(self.NOT_SEARCH))

    @field_validator("device")
    @classmethod
    def _torch_device(cls, v: str) -> str:
        if v != "auto" and v.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {v!r}")
        return v

    @field_validator("minibatch")
    @classmethod
    def _growing_minibatch(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not 1 <= v[0] <= v[1]:
            raise ValueError(f"minibatch: need 1 <= first <= last images, got {v}")
        return v


class RelionConfig(EstimatorConfig):
    """RELION 3.1's SGD initial model, then one global assignment pass (``relion-sgd``); RELION's own defaults."""

    sgd_ini_iter: int = Field(50, ge=1, description="RELION: initial SGD iterations")
    sgd_inbetween_iter: int = Field(200, ge=0, description="RELION: SGD iterations between the initial and final ones")
    sgd_fin_iter: int = Field(50, ge=1, description="RELION: final SGD iterations")
    sgd_ini_subset: int = Field(100, ge=1, description="RELION: minibatch of the initial SGD iterations (images)")
    sgd_fin_subset: int = Field(500, ge=1, description="RELION: minibatch of the final SGD iterations (images)")
    sgd_ini_resol_A: float = Field(35.0, gt=0, description="RELION: resolution of the initial SGD iterations (Å)")
    sgd_fin_resol_A: float = Field(15.0, gt=0, description="RELION: resolution of the final SGD iterations (Å)")
    healpix_order: int = Field(1, ge=0, description="RELION: angular sampling of the SGD (HEALPix order; 1: 15°)")
    assign_healpix_order: int = Field(2, ge=0, description="RELION: angular sampling of the assignment (2: 7.5°)")
    threads: int = Field(2, ge=1, description="RELION: threads (--j)")
    particle_diameter_A: float | None = Field(
        None, gt=0, description="RELION: mask diameter (Å); default: read off the images, as ab-initio's radius"
    )
    max_shift_px: float | None = Field(
        None, ge=0, description="RELION: offset search range (px); default as ab-initio's shift search"
    )
    offset_step_px: float = Field(2.0, gt=0, description="RELION: offset search step (px); the GUI's default 2")


class CryodrgnConfig(EstimatorConfig):
    """cryoDRGN's homogeneous ab initio (cryoDRGN2, ``cryodrgn abinit_homo_old``; ``abinit_homo`` before 4.2) as
    ``cryodrgn-abinit``. A small CPU schedule by default (200 lightly noisy 32-px images: err_rot median 15° in 5.4
    min on 2 cores); cryoDRGN's own defaults, a GPU's for large datasets, are in brackets."""

    cryodrgn_epochs: int = Field(21, ge=2, description="cryoDRGN: training epochs, -n [30]")
    cryodrgn_pretrain: int = Field(4000, ge=0, description="cryoDRGN: images seen with random poses first [10000]")
    cryodrgn_ps_freq: int = Field(
        5, ge=2, description="cryoDRGN: a pose search every N epochs, the first one included [5] (1 crashes 4.3.1)"
    )
    cryodrgn_batch_size: int = Field(16, ge=1, description="cryoDRGN: minibatch (images) [16]")
    cryodrgn_lr: float = Field(1e-3, gt=0, description="cryoDRGN: Adam's learning rate [1e-4]")
    cryodrgn_l_start: int = Field(8, ge=1, description="cryoDRGN: Fourier radius (px) of the first pose search [12]")
    cryodrgn_l_end: int | None = Field(
        None, ge=1, description="cryoDRGN: Fourier radius (px) of the last pose search [32]; default: half the box"
    )
    cryodrgn_base_healpy: int = Field(1, ge=1, description="cryoDRGN: HEALPix order of the base pose grid [2]")
    cryodrgn_niter: int = Field(3, ge=1, description="cryoDRGN: subdivisions of the pose grid [4]")
    cryodrgn_nkeptposes: int = Field(4, ge=1, description="cryoDRGN: poses kept per subdivision [8]")
    cryodrgn_t_ngrid: int = Field(3, ge=1, description="cryoDRGN: translations per axis of the first grid [7]")
    cryodrgn_dim: int = Field(128, ge=8, description="cryoDRGN: width of the decoder's hidden layers [256]")
    threads: int = Field(2, ge=1, description="cryoDRGN: CPU threads (OMP_NUM_THREADS; torch's default: all cores)")
    max_shift_px: float | None = Field(
        None, ge=0, description="cryoDRGN: translation search ±px, --t-extent [10]; default as ab-initio's shift search"
    )


#: estimator name → its config class
ESTIMATOR_CONFIGS: dict[str, type[EstimatorConfig]] = {
    "siamese": SiameseConfig,
    "euclidean": EuclideanConfig,
    "oracle": OracleConfig,
    "oracle-noise": OracleConfig,
    "regress-6d": RegressionConfig,
    "regress-quat": RegressionConfig,
    "regress-euler": RegressionConfig,
    "cvae": CVAEConfig,
    "aspire-cl": AspireConfig,
    "ab-initio": AbInitioConfig,
    "relion-sgd": RelionConfig,
    "cryodrgn-abinit": CryodrgnConfig,
}
