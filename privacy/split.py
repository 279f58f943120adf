"""Train/holdout split: each row goes to the holdout independently with the policy's probability.

With a secret, uniformly random seed the coins are i.i.d., so the training split is a Poisson
subsample of the source: a record is in it with probability 1 - p independently of every other
record. Removing one record then changes the training split by at most that record (couple the
two coin sequences by record, not by position), and the generator's guarantee over the training
split holds for the source as a whole; subsampling can only help. This needs the seed to be
unknown to the adversary: a chosen or published seed makes the coins a fixed function of row
positions, and removing a record would shift every later row's side. The workflow therefore draws
the split seed from OS entropy and keeps it in the workspace only (``release.synthesize``). The
holdout is read only by the audits, which run on the steward's side and are not DP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privacy.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


def split_mask(n_rows: int, holdout_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask, True for holdout rows; deterministic for a given (n_rows, fraction, seed)."""
    import numpy as np

    if not 0 < holdout_fraction < 1:
        raise InputError(f"holdout_fraction ({holdout_fraction}) must be in (0, 1)")
    rng = np.random.default_rng([seed, 0x5EED])
    return rng.random(n_rows) < holdout_fraction


def train_holdout(df: pl.DataFrame, holdout_fraction: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``df`` into (train, holdout); refuse a split that leaves either side empty."""
    import polars as pl

    mask = split_mask(df.height, holdout_fraction, seed)
    s = pl.Series("_holdout", mask)
    train, holdout = df.filter(~s), df.filter(s)
    if train.height < 2 or holdout.height < 2:
        raise InputError("the data is too small to split into training and holdout parts")
    return train, holdout
