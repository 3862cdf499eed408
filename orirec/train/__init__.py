"""Distance learning (layer 3): the one training loop (Ray Train shaped), pair data, steps, augmentations."""

from orirec.train.data import PairData, split_by_image
from orirec.train.loop import (
    binned_mae,
    evaluate_pairs,
    make_loss,
    train_loop_per_worker,
    train_step,
)

__all__ = [
    "PairData",
    "binned_mae",
    "evaluate_pairs",
    "make_loss",
    "split_by_image",
    "train_loop_per_worker",
    "train_step",
]
