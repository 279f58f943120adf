"""MST and AIM end to end on real data: output, card, accounting, pickling, quality."""

from __future__ import annotations

import math
import pickle
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from schema_frames import assert_schema_frame

from privacy.errors import InputError
from privacy.generators.tabular.aim import AIMGenerator
from privacy.generators.tabular.mst import MSTGenerator
from privacy.generators.tabular.registry import GENERATORS, generator_names, get_generator
from privacy.schema import Schema
from privacy.spend import PrivacySpend

DATA = Path(__file__).resolve().parents[1] / "data"
SPEND = PrivacySpend(epsilon=1.0, delta=1e-9)
AIM_COLUMNS = ["age", "education", "sex", "income"]


@pytest.fixture(scope="module")
def small(adult) -> tuple[pl.DataFrame, Schema]:
    df, schema = adult
    return df.select(AIM_COLUMNS), Schema(columns=tuple(schema.column(c) for c in AIM_COLUMNS))


@pytest.fixture(scope="module")
def mst_fit(adult):
    """One MST fit on the 2,000 Adult rows at eps 1 (about 25 s on 2 cores), shared by the tests."""
    import mbi  # noqa: F401  importing JAX draws from numpy's global generator once (data-independent)

    df, schema = adult
    before = np.random.get_state()
    messages: list[tuple[str, float | None]] = []
    started = time.monotonic()
    fitted = MSTGenerator().fit(df, schema, SPEND, progress=lambda m, f: messages.append((m, f)))
    seconds = time.monotonic() - started
    after = np.random.get_state()
    untouched = np.array_equal(after[1], before[1]) and after[2:] == before[2:]
    return fitted, messages, seconds, untouched


def total_variation(real: pl.Series, synth: pl.Series) -> float:
    p = real.value_counts(normalize=True).rename({"proportion": "p"})
    q = synth.value_counts(normalize=True).rename({"proportion": "q"})
    joined = p.join(q, on=real.name, how="full", coalesce=True).fill_null(0.0)
    return 0.5 * float((joined["p"] - joined["q"]).abs().sum())


# --- MST -----------------------------------------------------------------------------------------


def test_mst_sample_has_schema_columns_dtypes_and_domain(mst_fit, adult):
    fitted, _, seconds, _ = mst_fit
    _, schema = adult
    print(f"MST fit on 2,000 x 15 Adult rows at eps 1: {seconds:.1f} s")
    assert_schema_frame(fitted.sample(3000, seed=1), schema, 3000)
    assert_schema_frame(fitted.sample(0, seed=1), schema, 0)


def test_mst_reproduces_the_income_marginal(mst_fit, adult):
    fitted, *_ = mst_fit
    df, _ = adult
    out = fitted.sample(5000, seed=2)
    assert total_variation(df["income"], out["income"]) < 0.1


def test_mst_spends_exactly_rho_and_records_it(mst_fit):
    fitted, *_ = mst_fit
    card = fitted.card
    assert card.name == "mst"
    assert card.spend.epsilon == 1.0 and card.spend.delta == 1e-9
    assert card.spend.rho == pytest.approx(card.parameters["rho"], rel=0)
    assert math.isclose(card.parameters["rho_used"], card.spend.rho, rel_tol=1e-12)
    assert card.parameters["selected_edges"] == 14  # a spanning tree over 15 columns
    assert "zero-concentrated DP" in card.accounting and "OpenDP" in card.accounting
    assert card.unit_of_privacy == "one record of the training split; add/remove-one neighbouring datasets"
    assert card.domain_sources == {
        "categories": "schema",
        "numeric bin edges": "schema (equal-width over public bounds)",
        "row count": "DP estimate from noisy marginals",
    }
    assert set(card.library_versions) >= {"smartnoise-synth", "mbi", "numpy"}
    card.to_dict()  # serialisable shape


def test_mst_estimated_rows_is_a_noisy_estimate(mst_fit):
    fitted, *_ = mst_fit
    # close to the 2,000 training rows, but it comes from the model's total (see test_dp_rules
    # for the check that len(data) never reaches the estimator)
    assert isinstance(fitted.estimated_rows, int)
    assert 1500 < fitted.estimated_rows < 2500


def test_mst_reports_progress_and_leaves_numpy_global_state_alone(mst_fit):
    _, messages, _, untouched = mst_fit
    assert messages[0][0].startswith("MST:") and messages[-1] == ("MST: done", 1.0)
    fractions = [f for _, f in messages if f is not None]
    assert fractions == sorted(fractions)
    assert untouched, "fit consumed numpy's global generator: a seed could reproduce the mechanism"


def test_mst_pickles_and_samples_identically(mst_fit):
    fitted, *_ = mst_fit
    again = pickle.loads(pickle.dumps(fitted))
    assert again.sample(500, seed=7).equals(fitted.sample(500, seed=7))
    assert again.card == fitted.card
    assert again.estimated_rows == fitted.estimated_rows


def test_mst_same_seed_same_rows(mst_fit):
    fitted, *_ = mst_fit
    assert fitted.sample(300, seed=3).equals(fitted.sample(300, seed=3))
    assert not fitted.sample(300, seed=3).equals(fitted.sample(300, seed=4))


@pytest.mark.parametrize("n, seed, message", [(-1, 0, r"n \(-1\) must be an integer >= 0"),
                                              (10, -2, r"seed \(-2\) must be an integer >= 0")])
def test_sample_rejects_bad_arguments(mst_fit, n, seed, message):
    fitted, *_ = mst_fit
    with pytest.raises(InputError, match=message):
        fitted.sample(n, seed)


def test_zero_delta_is_refused(small):
    df, schema = small
    with pytest.raises(InputError, match=r"delta \(0.0\) must be > 0"):
        MSTGenerator().fit(df, schema, PrivacySpend(epsilon=1.0, delta=0.0))
    with pytest.raises(InputError, match=r"delta \(0.0\) must be > 0"):
        AIMGenerator(max_rounds=1).fit(df, schema, PrivacySpend(epsilon=1.0, delta=0.0))


# --- AIM -----------------------------------------------------------------------------------------


def test_aim_max_rounds_spends_all_rho_in_the_last_round(small):
    df, schema = small
    messages: list[tuple[str, float | None]] = []
    started = time.monotonic()
    fitted = AIMGenerator(max_rounds=3).fit(df, schema, SPEND, progress=lambda m, f: messages.append((m, f)))
    print(f"AIM max_rounds=3 on 2,000 x 4 rows: {time.monotonic() - started:.1f} s")
    p = fitted.card.parameters
    assert p["rounds_run"] == 3
    assert p["stopped_early"] is True
    assert p["stop_reason"].startswith("max_rounds (3) reached")
    assert math.isclose(p["rho_used"], fitted.card.spend.rho, rel_tol=1e-12)
    assert len(p["measured_marginals"]) == 3
    assert p["max_model_size"] == 80 and p["degree"] == 2
    rounds = [(m, f) for m, f in messages if m.startswith("AIM round ")]
    assert [m.split(":")[0] for m, _ in rounds] == ["AIM round 1", "AIM round 2", "AIM round 3"]
    assert rounds[-1][1] == pytest.approx(1.0)
    assert_schema_frame(fitted.sample(1000, seed=0), schema, 1000)
    again = pickle.loads(pickle.dumps(fitted))
    assert again.sample(200, seed=5).equals(fitted.sample(200, seed=5))


def test_aim_time_limit_stops_at_the_next_round_with_exact_spend(small):
    df, schema = small
    fitted = AIMGenerator(time_limit_s=1e-6).fit(df, schema, SPEND)
    p = fitted.card.parameters
    assert p["rounds_run"] == 1
    assert p["stopped_early"] is True
    assert p["stop_reason"].startswith("time_limit_s (1e-06) elapsed")
    assert math.isclose(p["rho_used"], fitted.card.spend.rho, rel_tol=1e-12)
    assert 1500 < fitted.estimated_rows < 2500


@pytest.mark.parametrize(
    "options, message",
    [
        ({"time_limit_s": -1}, r"time_limit_s \(-1\) must be > 0"),
        ({"time_limit_s": float("inf")}, r"time_limit_s \(inf\) must be > 0"),
        ({"max_rounds": 0}, r"max_rounds \(0\) must be an integer >= 1"),
        ({"max_rounds": 2.5}, r"max_rounds \(2.5\) must be an integer >= 1"),
        ({"max_model_size": 0}, r"max_model_size \(0\) must be > 0"),
        ({"degree": 0}, r"degree \(0\) must be an integer >= 1"),
        ({"max_cells": 0}, r"max_cells \(0\) must be an integer >= 1"),
    ],
)
def test_aim_options_are_checked(options, message):
    with pytest.raises(InputError, match=message):
        AIMGenerator(**options)


def test_aim_degree_above_column_count_is_refused(small):
    df, schema = small
    with pytest.raises(InputError, match=r"degree \(5\) must be <= the number of columns \(4\)"):
        AIMGenerator(degree=5).fit(df, schema, SPEND)


def test_aim_empty_workload_is_refused(small):
    df, schema = small
    with pytest.raises(InputError, match=r"AIM has an empty workload"):
        AIMGenerator(max_cells=1).fit(df, schema, SPEND)


# --- registry ------------------------------------------------------------------------------------


def test_registry_lists_and_builds_generators():
    assert generator_names() == ["aim", "dpctgan", "dpdiffusion", "mst", "patectgan"]
    assert set(GENERATORS) == set(generator_names())
    assert get_generator("dpctgan", epochs=2).name == "dpctgan" and get_generator("patectgan").name == "patectgan"
    assert get_generator("dpdiffusion", batch_size=64).name == "dpdiffusion"
    assert isinstance(get_generator("mst"), MSTGenerator)
    aim = get_generator("aim", max_rounds=2, time_limit_s=30.0)
    assert isinstance(aim, AIMGenerator) and aim.config.max_rounds == 2
    assert get_generator("aim").name == "aim" and get_generator("mst").name == "mst"


def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(InputError, match=r"^unknown generator 'x' \(known: aim, dpctgan, dpdiffusion, mst, patectgan\)$"):
        get_generator("x")
    with pytest.raises(InputError, match=r"generator 'mst'.*unexpected keyword argument 'rounds'"):
        get_generator("mst", rounds=3)


# --- MST plumbing --------------------------------------------------------------------------------


def test_compression_merges_small_noisy_cells_with_a_matching_query():
    from mbi import Dataset, Domain, Factor, LinearMeasurement

    from privacy.generators.tabular.mst import compress_measurements

    dom = Domain(["x"], [5])
    data = Dataset({"x": np.array([0, 0, 2, 1, 4])}, dom)
    m = LinearMeasurement(np.array([10.0, 0.5, 8.0, 0.1, 0.2]), ("x",), 1.0)
    compressed, (m2,), (mapping,) = compress_measurements(data, [m])
    np.testing.assert_array_equal(mapping, [0, 2, 1, 2, 2])
    assert compressed.domain.config == {"x": 3}
    np.testing.assert_array_equal(compressed.to_dict()["x"], [0, 0, 1, 2, 2])
    # the merged cell is scaled on both sides of the loss: measurement and query agree
    np.testing.assert_allclose(np.asarray(m2.noisy_measurement), [10.0, 8.0, 0.8 / 2])
    counts = Factor(compressed.domain, np.array([2.0, 1.0, 2.0]))
    np.testing.assert_allclose(np.asarray(m2.query(counts)), [2.0, 1.0, 1.0])


def test_decompress_spreads_a_merged_code_uniformly_over_its_cells():
    from privacy.generators.tabular.marginal import decompress

    mapping = np.array([0, 2, 1, 2, 2])
    codes = np.column_stack([np.full(30000, 2), np.zeros(30000, dtype=np.int64)])
    out = decompress(codes, (mapping, None), np.random.default_rng(0))
    freq = np.bincount(out[:, 0], minlength=5) / 30000
    np.testing.assert_allclose(freq, [0, 1 / 3, 0, 1 / 3, 1 / 3], atol=0.02)
    np.testing.assert_array_equal(out[:, 1], 0)
    np.testing.assert_array_equal(decompress(np.array([[0, 0], [1, 0]]), (mapping, None), np.random.default_rng(0))[:, 0], [0, 2])


def test_single_column_schema_spends_everything_on_its_marginal(small):
    df, schema = small
    one = Schema(columns=(schema.column("income"),))
    fitted = MSTGenerator().fit(df.select("income"), one, SPEND)
    p = fitted.card.parameters
    assert p["selected_edges"] == 0
    assert math.isclose(p["rho_used"], fitted.card.spend.rho, rel_tol=1e-12)
    assert total_variation(df["income"], fitted.sample(4000, seed=1)["income"]) < 0.05
