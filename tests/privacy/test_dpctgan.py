"""DP-CTGAN on real Adult rows: output, accounting, the pre-DP-SGD privacy rule, options."""

from __future__ import annotations

import math
import pickle
import time

import numpy as np
import polars as pl
import pytest
import torch
from schema_frames import assert_schema_frame

from privacy.errors import InputError
from privacy.generators.tabular.deep.accounting import (
    calibrate_measurement,
    gaussian_entry,
    order_epsilon,
    rdp_at,
    rdp_budget,
    rdp_epsilon,
)
from privacy.generators.tabular.deep.dpctgan import DPCTGANGenerator, make_plan, measure
from privacy.generators.tabular.deep.dpsgd import Plan
from privacy.generators.tabular.deep.encoding import SchemaEncoder
from privacy.spend import PrivacySpend

SPEND = PrivacySpend(epsilon=3.0, delta=1e-6)


@pytest.fixture(scope="module")
def fitted(adult):
    df, schema = adult
    messages: list[str] = []
    f = DPCTGANGenerator(epochs=8, batch_size=200, device="cpu").fit(
        df, schema, SPEND, progress=lambda m, _f: messages.append(m)
    )
    return f, messages


def test_samples_follow_the_schema_and_the_seed(fitted, adult) -> None:
    f, _ = fitted
    _df, schema = adult
    a = f.sample(700, seed=1)
    assert_schema_frame(a, schema, 700)
    assert a.equals(f.sample(700, seed=1))
    assert not a.equals(f.sample(700, seed=2))
    assert f.sample(0, seed=1).height == 0
    # sampling leaves torch's global generator alone
    state = torch.get_rng_state()
    f.sample(10, seed=3)
    assert torch.equal(state, torch.get_rng_state())


def check_guarantee(p: dict, spend: PrivacySpend, card_epsilon: float) -> None:
    """The card charges the fixed-order guarantee, recomputed from what the card records.

    (Was: the card's epsilon equalled ``rdp_epsilon`` of the run's history, i.e. the order optimised
    after the noisy count had set the plan, which is not a guarantee of the adaptive mechanism.)
    """
    history = [tuple(h) for h in p["preprocess_history"]] + [(p["noise_multiplier"], p["sample_rate"], p["steps"])]
    order = p["rdp_order"]
    budget = rdp_budget(spend.epsilon, spend.delta, order)
    assert p["rdp_budget_at_order"] == budget
    assert card_epsilon == p["epsilon_spent"] == order_epsilon(budget, order, spend.delta)
    assert card_epsilon == pytest.approx(spend.epsilon, rel=1e-12) and card_epsilon <= spend.epsilon  # settles
    # the run's RDP at alpha0 is within the budget, and uses it (the calibration's tolerance)
    assert p["rdp_at_order"] == rdp_at(history, order)
    assert budget * (1 - 1e-5) <= p["rdp_at_order"] <= budget
    # information only: the optimised-order figure of this one history
    assert p["epsilon_optimised_order_info"] == pytest.approx(rdp_epsilon(history, spend.delta), rel=1e-12)
    assert p["epsilon_optimised_order_info"] <= card_epsilon


def test_card_charges_what_the_accountant_reports(fitted) -> None:
    f, messages = fitted
    p = f.card.parameters
    check_guarantee(p, SPEND, f.card.spend.epsilon)
    assert p["steps"] == p["planned_steps"] == math.ceil(8 / p["sample_rate"])
    # the sampling rate comes from the noisy count, not len(data)
    assert p["sample_rate"] == pytest.approx(200 / f.noisy_rows)
    assert f.noisy_rows != 2000
    assert abs(f.estimated_rows - 2000) < 200
    for key in ("noise_multiplier", "sample_rate", "steps", "max_grad_norm", "accountant", "delta"):
        assert key in p
    assert "RDPAccountant" in f.card.accounting
    assert f"alpha0 = {p['rdp_order']:g}" in f.card.accounting and "information only" in f.card.accounting
    # unnoised figures (the exact count of sampled records, real-batch losses) stay off the released card
    assert not {"records_processed", "samples_per_second", "train_seconds", "d_loss"} & set(p)
    assert f.training_stats["records_processed"] > 0 and f.training_stats["samples_per_second"] > 0
    assert f.card.domain_sources["conditional sampling frequencies"].startswith("DP")
    assert any("epsilon" in m for m in messages)


def test_pickle_round_trip_samples_identically(fitted) -> None:
    f, _ = fitted
    g = pickle.loads(pickle.dumps(f))
    assert g.sample(300, seed=9).equals(f.sample(300, seed=9))


def test_it_learns_the_categorical_marginals(fitted, adult) -> None:
    f, _ = fitted
    df, schema = adult
    out = f.sample(4000, seed=4)
    tvs, ratios = [], []
    for col in ("sex", "relationship", "race", "marital_status"):
        cats = list(schema.column(col).categories)
        real = df[col].value_counts().to_dict(as_series=False)
        syn = out[col].value_counts().to_dict(as_series=False)
        r = np.array([dict(zip(real[col], real["count"])).get(c, 0) for c in cats], dtype=float)
        s = np.array([dict(zip(syn[col], syn["count"])).get(c, 0) for c in cats], dtype=float)
        tv = 0.5 * np.abs(r / r.sum() - s / s.sum()).sum()
        tv_uniform = 0.5 * np.abs(r / r.sum() - 1 / len(cats)).sum()
        tvs.append(tv)
        ratios.append(tv / tv_uniform)
    # against a generator that outputs uniform categories (ratio 1). One DP fit at eps 3, 8 epochs on
    # 2,000 rows varies: over 7 fits single columns reached ratios of 0.66 and 0.72 and one TV 0.203
    # (a CI failure of the old per-column 0.5 and 0.2 thresholds), while the mean ratio stayed at
    # 0.15-0.30; the mean is what separates learning from not learning
    assert float(np.mean(ratios)) < 0.45, dict(zip(("sex", "relationship", "race", "marital_status"), ratios))
    assert max(ratios) < 0.9 and max(tvs) < 0.3, (ratios, tvs)


def test_changing_one_record_changes_nothing_before_dp_sgd(adult) -> None:
    df, schema = adult
    neighbour = df.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(90).otherwise(pl.col("age")).alias("age"),
        pl.when(pl.int_range(pl.len()) == 0).then(99999).otherwise(pl.col("capital_gain")).alias("capital_gain"),
        pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("Holand-Netherlands")).otherwise(pl.col("native_country"))
        .alias("native_country"),
    )
    assert not neighbour.equals(df)
    a = SchemaEncoder.from_schema(schema)
    assert a.describe() == SchemaEncoder.from_schema(schema).describe()
    # the encoder never sees data: the same object describes both datasets' encodings
    enc_a = a.encode(df)
    enc_b = a.encode(neighbour)
    assert enc_a.shape == enc_b.shape  # widths come from the schema
    # the pre-training measurement's noise scale and sensitivity do not depend on the data
    cat_names = {s.column for s in a.categorical_spans}
    cat_index = [j for j, c in enumerate(a.discretizer.codecs) if c.name in cat_names]
    codes_a, _ = a.codes_and_offsets(df)
    codes_b, _ = a.codes_and_offsets(neighbour)
    _ca, _na, ma = measure(a, codes_a, cat_index, 0.1, 1e-6)
    _cb, _nb, mb = measure(a, codes_b, cat_index, 0.1, 1e-6)
    assert ma.std == mb.std and ma.l2_sensitivity == mb.l2_sensitivity == math.sqrt(len(cat_index))
    assert ma.entry == mb.entry
    # numeric changes leave the categorical histograms (the only data the measurement reads) equal
    hist = [np.bincount(codes_a[:, j], minlength=s.width) for j, s in zip(cat_index, a.categorical_spans)]
    hist_b = [np.bincount(codes_b[:, j], minlength=s.width) for j, s in zip(cat_index, a.categorical_spans)]
    diff = sum(int(np.abs(x - y).sum()) for x, y in zip(hist, hist_b))
    assert diff == 2  # one record moved between two cells of one histogram: sensitivity as analysed


def test_time_limit_becomes_a_step_count_before_training(adult) -> None:
    df, schema = adult
    started = time.monotonic()
    f = DPCTGANGenerator(epochs=200, batch_size=200, device="cpu", time_limit_s=6.0).fit(df, schema, SPEND)
    took = time.monotonic() - started
    p = f.card.parameters
    assert p["steps_limited_by_time"] and p["steps"] == p["planned_steps"] < p["steps_for_epochs"]
    assert p["probe_seconds_per_step"] > 0
    # fewer steps, the same budget at the same fixed order: less noise per step, the full epsilon is spent
    check_guarantee(p, SPEND, f.card.spend.epsilon)
    # soft limit: planned from the probe's pace, never cut short (generous slack for a shared CI machine)
    assert took < 6.0 * 10


@pytest.mark.parametrize(
    "options",
    [{"pac": 10}, {"device": "tpu"}, {"epochs": 0}, {"batch_size": 1}, {"grad_sample_mode": "fast"},
     {"time_limit_s": -1.0}, {"generator_dim": []}, {"preprocess_share": 0.9}],
)
def test_bad_options_are_input_errors(options) -> None:
    with pytest.raises(InputError):
        DPCTGANGenerator(**options)


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        DPCTGANGenerator(epoch=3)  # type: ignore[call-arg]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(adult) -> None:
    df, schema = adult
    with pytest.raises(InputError, match="no CUDA GPU"):
        DPCTGANGenerator(device="cuda", epochs=1).fit(df, schema, SPEND)


def test_zero_delta_is_refused(adult) -> None:
    df, schema = adult
    with pytest.raises(InputError, match="delta"):
        DPCTGANGenerator(epochs=1).fit(df, schema, PrivacySpend(epsilon=1.0, delta=0.0))


def test_plans_over_all_noisy_counts_meet_the_claim(adult, envelope_epsilon) -> None:
    """The guarantee covers the plan whatever the noisy count chose (adaptive composition per order).

    For the test fit's settings, the per-order envelope of the total RDP over the plans the counts
    ``ENVELOPE_COUNTS`` (50 .. 50,000 and extremes) select meets the target; with each plan
    calibrated at its own optimal order it was 3.5511 > 3. The order is the same for every count
    and for two data sets (a neighbour of Adult), and it is the public rule's."""
    df, schema = adult
    gen = DPCTGANGenerator(epochs=8, batch_size=200, device="cpu")
    enc = SchemaEncoder.from_schema(schema)
    d = len(enc.categorical_spans)
    entry = gaussian_entry(calibrate_measurement(0.05 * SPEND.epsilon, SPEND.delta) * math.sqrt(d), math.sqrt(d))
    eps, plans = envelope_epsilon(lambda c: make_plan(SPEND, gen, c, entry), SPEND.delta)
    assert eps <= SPEND.epsilon + 1e-9, eps
    # alpha0 from the measurement actually made on two data sets, and from every count
    cat_index = [j for j, c in enumerate(enc.discretizer.codecs) if c.name in {s.column for s in enc.categorical_spans}]
    orders = set()
    for data in (df, df.slice(1)):
        codes, _ = enc.codes_and_offsets(data)
        _cond, noisy, m = measure(enc, codes, cat_index, 0.05 * SPEND.epsilon, SPEND.delta)
        orders.add(make_plan(SPEND, gen, noisy, m.entry).order)
    orders |= {p.order for p in plans}
    assert len(orders) == 1
    assert orders == {Plan.public_order(epsilon=SPEND.epsilon, delta=SPEND.delta, epochs=8, fixed_history=[entry])}


def test_a_tiny_noisy_row_count_still_trains_the_generator() -> None:
    """A shadow fit on ~170 rows at epsilon 1 could estimate about one row per step for the
    generator, and BatchNorm cannot train on one row: the audit's one-run fit then failed."""
    from pathlib import Path

    import polars as pl

    from privacy.generators.tabular.deep.dpctgan import DPCTGANGenerator
    from privacy.schema import Schema
    from privacy.spend import PrivacySpend
    from privacy.table import load_conformed

    data_dir = Path(__file__).parents[1] / "data"
    schema = Schema.load(data_dir / "adult_schema.yaml")
    df, _ = load_conformed(data_dir / "adult_2000.csv", schema)
    small = df.head(12)
    fitted = DPCTGANGenerator(epochs=1, batch_size=200, device="cpu").fit(small, schema,
                                                                          PrivacySpend(epsilon=1.0, delta=1e-9))
    assert fitted.card.parameters["generated_rows_per_step"] >= 2
    assert isinstance(fitted.sample(5, 0), pl.DataFrame)
