"""Typed configs per stage (pydantic; unknown keys are errors) and the whole-run config."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SimulateConfig(_Strict):
    """Image formation: which structures, how many projections, box, pixel size, noise, shifts.

    Every number must be finite (no NaN/inf) and every range (min, max) ordered, so a bad value fails here,
    before a store exists."""

    model_config = ConfigDict(allow_inf_nan=False)

    inputs: list[str] = Field(
        default_factory=lambda: ["pseudo:0"], description="structure files/folders/manifest CSV, or 'pseudo:<seed>'"
    )
    n_per_structure: int = Field(2000, gt=0, description="projections per structure")
    box_px: int = Field(48, ge=8, description="image box L (px)")
    pixel_size_A: float = Field(2.5, gt=0, description="pixel size (Å)")
    resolution_A: float | None = Field(None, gt=0, description="atom Gaussian resolution (Å); default 4.5 px")
    sigma2: float = Field(0.0, ge=0, description="noise variance / clean-image variance (16 ⇔ SNR 1/16; DESIGN §2)")
    shift_px: float = Field(
        0.0, ge=0, description="shift scale per axis (px): half-width (uniform, triangular), σ (gaussian); 0 = centred"
    )
    shift_distribution: Literal["uniform", "gaussian", "triangular"] = Field(
        "uniform", description="distribution of each shift component: uniform, gaussian or triangular"
    )
    orientations: Literal["uniform", "uniform_euler", "preferred"] = Field(
        "uniform",
        description="uniform (SO(3)), uniform_euler (RELION ZYZ angles uniform in a box; tilt in tilt_range_rad), "
        "or preferred (von Mises-Fisher mixture about preferred_directions)",
    )
    tilt_range_rad: tuple[float, float] = Field(
        (0.0, math.pi), description="uniform_euler: range of the tilt angle (rad)"
    )
    preferred_directions: list[tuple[float, ...]] = Field(
        default_factory=lambda: [(0.0, 0.0)],  # type: ignore[arg-type]  # a (tilt, rot) pair is a tuple[float, ...]
        description="preferred viewing directions: (tilt, rot) pairs in rad or unit 3-vectors (particle frame)",
    )
    preferred_kappa: float = Field(
        10.0, ge=0, description="von Mises-Fisher concentration about each preferred direction (0 = uniform)"
    )
    preferred_uniform_fraction: float = Field(
        0.0, ge=0, le=1, description="preferred: fraction of uniform orientations in the mixture"
    )
    normalize: bool = Field(
        False,
        description="per image: background (outside the disk of normalize_radius_px, default 0.375 box) to mean 0, "
        "std 1, as RELION",
    )
    normalize_radius_px: float | None = Field(
        None, gt=0, description="background = pixels outside this radius (px); default 0.375 box (RELION's 75 %)"
    )
    symmetry: str = Field(
        "C1",
        pattern=r"^[CcDd][0-9]+$",
        description="point group of every structure (Cn, Dn); a manifest's "
        "symmetry_hint column overrides it per structure",
    )
    ctf: bool = Field(
        False,
        description="apply a CTF (RELION sign convention) drawn from defocus_range_A, astigmatism_A and "
        "bfactor_range_A2, with voltage_kV, cs_mm and amp_contrast",
    )
    defocus_range_A: tuple[float, float] = Field((10000.0, 25000.0), description="defocus u range (Å)")
    astigmatism_A: tuple[float, float] = Field((0.0, 500.0), description="defocus u - v range (Å)")
    voltage_kV: float = Field(300.0, gt=0, description="acceleration voltage of the CTF (kV)")
    cs_mm: float = Field(2.7, ge=0, description="spherical aberration of the CTF (mm)")
    amp_contrast: float = Field(0.1, ge=0, lt=1, description="amplitude contrast of the CTF (fraction)")
    bfactor_range_A2: tuple[float, float] = Field((0.0, 0.0), description="B-factor range (Å²)")
    pad: int = Field(
        3,
        ge=1,
        description="Fourier padding factor of the projector (3: 0.4% rel. L2 error with image sampling; "
        "2: 1%, less memory)",
    )
    sampling: Literal["auto", "image", "padded"] = Field(
        "auto",
        description="projector slice sampling: image grid (fast; particle within the inscribed sphere), padded "
        "grid (density in the box corners), or auto (image unless > 0.1% of the mass is outside that sphere)",
    )
    backend: Literal["auto", "nufft", "torch", "astra"] = Field(
        "auto",
        description="projector: nufft (type-2 NUFFT slices with finufft, CPU: the fastest and most accurate "
        "there), torch (trilinear Fourier slices, CPU/GPU), astra (ASTRA's line integrals, CUDA only), or auto "
        "(nufft on a CPU device when finufft is installed, else torch)",
    )
    nufft_eps: float = Field(1e-3, ge=1e-5, lt=0.1, description="relative tolerance of the nufft backend")
    device: str = Field(
        "cpu",
        pattern=r"^(cpu|mps|cuda(:[0-9]+)?)$",
        description="torch device of the projector (cpu, cuda, cuda:1, ...)",
    )
    compile: Literal["auto", "on", "off"] = Field(
        "auto", description="torch.compile the projector's interpolation: auto (on for >= 20,000 images), on or off"
    )
    shard_size: int = Field(256, gt=0, description="images per shard (one writer each): < 16 or a multiple of 16")
    seed: int = Field(0, ge=0, description="random seed (numpy seeds are >= 0)")

    @field_validator("defocus_range_A", "astigmatism_A", "bfactor_range_A2", "tilt_range_rad")
    @classmethod
    def _ranges_are_ordered(cls, v: tuple[float, float], info: ValidationInfo) -> tuple[float, float]:
        lo, hi = v
        if lo > hi:
            raise ValueError(f"expected (min, max) with min <= max, got ({lo:g}, {hi:g})")
        if info.field_name == "astigmatism_A" and lo < 0:
            raise ValueError(f"expected values >= 0 Å, got ({lo:g}, {hi:g})")
        return v

    @field_validator("shard_size")
    @classmethod
    def _shard_holds_whole_chunks(cls, v: int) -> int:
        if v > 16 and v % 16:  # the store's chunks hold 16 images; a shard holds whole chunks
            raise ValueError(f"shard_size must be below 16 or a multiple of 16 (16 images per chunk), got {v}")
        return v

    @field_validator("preferred_directions")
    @classmethod
    def _directions_are_pairs_or_vectors(cls, v: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
        if not v or any(len(d) not in (2, 3) for d in v):
            raise ValueError("preferred_directions: expected a non-empty list of (tilt, rot) pairs or 3-vectors")
        return v


class ModelConfig(_Strict):
    """Siamese encoder: a family and a named preset, optionally overridden (orirec.models.registry)."""

    family: Literal["vgg", "resnet", "polar", "pair", "commonlines"] = Field(
        "vgg",
        description="vgg: published VGG stack; resnet: residual blocks + norm; polar: rotation-equivariant; "
        "pair: Fourier line tokens + a learned common-line distance head that sees both images (ignores distance); "
        "commonlines: explicit per-band common-line coherence maps of both images + a learned head (ignores distance)",
    )
    preset: Literal["tiny", "small", "paper"] = Field(
        "small", description="encoder size: tiny, small or paper (DESIGN §1.1)"
    )
    channels: list[int] | None = Field(None, description="conv channels per stage; default the preset's")
    kernels: list[int] | None = Field(None, description="conv kernel sizes (px) per stage; default the preset's")
    feature_dim: int | None = Field(None, ge=2, le=1024, description="embedding size; default the preset's")
    norm: Literal["none", "batch", "group"] | None = Field(
        None, description="normalization after each conv; default: group for resnet, none otherwise"
    )
    distance: Literal["angle", "euclidean"] = Field(
        "angle", description="d_p from embeddings: 2·arccos|cos| (angle) or π·tanh(‖e1−e2‖) (euclidean), rad"
    )
    downsample: int = Field(1, ge=1, le=4, description="anti-aliased Fourier down-sampling of the input (factor)")
    n_radii: int | None = Field(None, ge=1, description="polar/pair/commonlines: radial samples (default from the box)")
    n_angles: int | None = Field(None, ge=4, description="polar/pair/commonlines: angular samples over [0, 2π)")
    pair_batch: int | None = Field(
        None,
        gt=0,
        description="pair/commonlines: pairs per chunk of the distance head and most pairs per training step (1024)",
    )


class AugmentConfig(_Strict):
    """Training-time augmentations (orirec.train.augment); all off by default."""

    shift_px: float = Field(0.0, ge=0, description="random sub-pixel shift, uniform in ±shift_px per axis (px)")
    rotate: bool = Field(False, description="random in-plane rotation; the quaternion becomes z(α)·q")
    noise_sigma2: tuple[float, float] | None = Field(
        None, description="raise the noise to a σ² drawn uniformly in this range (relative to the clean variance)"
    )
    ctf: bool = Field(False, description="random CTF on fresh images (on_the_fly only)")
    defocus_range_A: tuple[float, float] = Field((10000.0, 25000.0), description="defocus range of the CTF (Å)")


class TrainConfig(_Strict):
    """Distance learning (DESIGN §1.1)."""

    model: ModelConfig = Field(default_factory=ModelConfig, description="the Siamese encoder")
    epochs: int = Field(10, gt=0, description="total epochs (a resumed run continues up to this count)")
    batch_size: int = Field(
        256, gt=0, description="pairs per step (global: a multiple of the data-parallel world size)"
    )
    lr: float = Field(1e-3, gt=0, description="learning rate")
    optimizer: Literal["rmsprop", "adam"] = Field("adam", description="adam, or rmsprop (as published)")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: the learning rate decays from lr to lr/20 over the epochs (set per epoch)"
    )
    loss: Literal["l2", "l1", "huber"] = Field("l2", description="loss on d_p - d_q (rad): l2, l1 or huber")
    huber_delta: float = Field(0.2, gt=0, description="threshold of the huber loss (rad)")
    pairing: Literal["all", "pairs"] = Field(
        "all",
        description="all: every within-protein pair of the step's images, weighted to uniform d_q; "
        "pairs: only the sampled uniform-distance pairs (as published)",
    )
    on_the_fly: bool = Field(False, description="simulate fresh training images every step from the store's volumes")
    proteins: list[int] | None = Field(
        None, description="train on these proteins of the store only (indices into its protein table); default all"
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="training-time augmentations")
    init_from: str | None = Field(
        None,
        description="start from this checkpoint's weights (same model config; fresh optimizer, epoch 0): "
        "fine-tune a model on a new protein or noise level",
    )
    pairs_per_epoch: int = Field(
        20000, gt=0, description="training pairs drawn per epoch (d_q uniform on [0, π], within one protein)"
    )
    val_fraction: float = Field(0.1, gt=0, lt=1, description="fraction of each protein's images held out")
    val_pairs: int = Field(4000, gt=0, description="fixed validation pairs")
    val_images: int = Field(
        48, ge=4, description="on_the_fly: fresh images per protein simulated once for validation (half held out)"
    )
    val_bins: int = Field(6, gt=0, description="equal d_q bins over [0, π] of the binned validation MAE")
    patience: int | None = Field(
        None, gt=0, description="early stopping: epochs without a better validation MAE (None: never)"
    )
    num_workers: int = Field(1, gt=0, description="data-parallel workers (Ray Train when > 1)")
    num_threads: int | None = Field(2, gt=0, description="torch threads per worker (None: torch's own setting)")
    device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu", description="cpu, cuda (cuda:$LOCAL_RANK under torchrun / Ray Train) or auto (cuda when available)"
    )
    seed: int = Field(0, description="seeds the model initialization, the split and each epoch's pairs")


class RefineConfig(_Strict):
    """Local projection-matching refinement after recovery (gold-standard half-maps; no ground truth)."""

    rounds: int = Field(
        0, ge=0, description="rounds of projection-matching refinement after recovery (0: off; 4: the whole schedule)"
    )
    schedule_deg: tuple[tuple[float, float], ...] = Field(
        ((12.0, 4.0), (4.0, 4.0 / 3.0), (6.0, 2.0), (2.0, 2.0 / 3.0)),
        min_length=1,
        description="(ball radius, grid step) per round (°); the last entry repeats",
    )
    resolution_A: float = Field(20.0, gt=0, description="low-pass of images and projections during matching (Å)")
    box_px: int | None = Field(None, ge=16, description="matching box (px); default: pixel = resolution / 2")
    max_shift_px: float | None = Field(
        None, ge=0, description="in-plane shift search (px, 2D norm); default: the store's recorded range (0: none)"
    )

    @field_validator("schedule_deg")
    @classmethod
    def _radius_and_step(cls, v: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        for radius, step in v:
            if not (0 < step <= radius):
                raise ValueError(f"schedule_deg: need 0 < step <= radius (°), got ({radius}, {step})")
        return v


class RecoverConfig(_Strict):
    """Orientation recovery (DESIGN §1.2)."""

    max_images: int | None = Field(None, gt=1, description="recover the first N images of the store")
    graph: Literal["full", "knn"] = Field(
        "full", description="pair graph: full (every pair) or knn (nearest neighbours in embedding space)"
    )
    knn_k: int = Field(30, gt=0, description="neighbours per image (kNN graph)")
    n_random_edges: int = Field(10, ge=0, description="random long-range edges per image (kNN graph)")
    n_starts: int = Field(20, gt=0, description="random starts of the spectral rounding")
    steps: int = Field(300, ge=0, description="refinement steps on the sphere")
    loss: Literal["l2", "huber"] = Field("l2", description="refinement loss on d(q_i, q_j) - d_p (rad): l2 or huber")
    gauge: bool = Field(True, description="resolve the detector-frame gauge (DESIGN §1.3) without ground truth")
    gauge_sources: int = Field(100, gt=0, description="images that get in-plane rotated copies")
    gauge_angles_deg: tuple[float, ...] = Field((60.0, -60.0), description="in-plane angles of the copies (°)")
    gauge_box_px: int = Field(32, ge=8, description="box of the low-resolution consistency search (px)")
    gauge_max_images: int = Field(600, gt=1, description="images used by the consistency search")
    num_workers: int = Field(1, gt=0, description="Ray actors of partitioned recovery (1: in this process)")
    partitions: int | None = Field(
        None, gt=0, description="parts of the pair graph (k-means on the embeddings); default num_workers, 1 = whole"
    )
    rounds: int = Field(20, ge=0, description="Jacobi rounds of partitioned recovery")
    block_steps: int = Field(5, gt=0, description="L-BFGS steps per part per round")
    relax: float = Field(0.6, gt=0, le=1, description="fraction of each part's move taken per round")
    refine: RefineConfig = Field(default_factory=RefineConfig, description="projection-matching refinement")
    seed: int = Field(0, description="random seed")


class ReconstructConfig(_Strict):
    """Direct Fourier inversion (DESIGN §1.4)."""

    pad: int = Field(2, ge=1, le=4, description="Fourier padding factor (1-4; memory grows as pad³)")
    wiener: float = Field(1e-3, ge=0, description="Wiener constant of the inversion (relative)")
    seed: int = Field(0, description="random seed")


class TrackingConfig(_Strict):
    """MLflow tracking; default a sqlite file in the run folder."""

    enabled: bool = Field(True, description="log to MLflow")
    uri: str | None = Field(None, description="tracking URI; default sqlite:///<run>/mlflow.db")
    experiment: str = Field("orirec", description="MLflow experiment")


class TuneConfig(_Strict):
    """A Ray Tune sweep (ASHA, orirec.distributed.tune) over the training run (``orirec tune``; a pipeline's
    ``tune`` stage); the trials' own training keeps a short budget, ``train`` keeps its own epochs."""

    space: str = Field("pipelines/tune-space.yaml", description="search space YAML (dotted TrainConfig keys)")
    num_samples: int = Field(8, gt=0, description="trials (times the grid size)")
    epochs: int = Field(3, gt=0, description="epochs per trial (ASHA's max_t)")
    pairs_per_epoch: int = Field(1024, gt=0, description="training pairs per epoch and trial")
    workers_per_trial: int = Field(1, gt=0, description="Ray Train workers (1 CPU each) per trial")
    max_concurrent: int | None = Field(None, gt=0, description="trials at a time (default: CPUs / workers)")


class RunConfig(_Strict):
    """A whole simulate → train → recover → reconstruct → evaluate run."""

    version: str | None = Field(None, description="orirec version that wrote this file")
    git_sha: str | None = Field(None, description="git commit of the orirec source that wrote this file, if known")
    git_dirty: bool | None = Field(None, description="whether that checkout had uncommitted changes, if known")
    name: str = Field("demo", description="run name (a plain folder name)")
    seed: int = Field(0, description="seed of the run")
    simulate: SimulateConfig = Field(default_factory=SimulateConfig, description="image formation")
    train: TrainConfig = Field(default_factory=TrainConfig, description="distance learning")
    recover: RecoverConfig = Field(default_factory=RecoverConfig, description="orientation recovery")
    reconstruct: ReconstructConfig = Field(default_factory=ReconstructConfig, description="reconstruction")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow tracking")

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, v: str) -> str:
        if not v or "/" in v:
            raise ValueError(f"run name must be a plain folder name, got {v!r}")
        return v
