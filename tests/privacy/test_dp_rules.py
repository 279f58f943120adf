"""DESIGN.md section 4 for MST and AIM: nothing before the DP step depends on the data.

The checks stop smartnoise's own ``fit`` at the entry of the DP mechanism (``MST()`` / ``AIM()``)
and compare what it received (the mbi Domain, the transformer's cardinalities, AIM's workload)
across neighbouring or edited datasets.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import optimize, stats

import privacy.generators.tabular.aim as aim_mod
import privacy.generators.tabular.mst as mst_mod
from privacy.errors import InputError
from privacy.generators.tabular.discretize import Discretizer
from privacy.generators.tabular.marginal import mechanism_randomness, prepare, zcdp_rho
from privacy.schema import Schema
from privacy.spend import PrivacySpend
from privacy.table import conform, read_raw

DATA = Path(__file__).resolve().parents[1] / "data"
SPEND = PrivacySpend(epsilon=1.0, delta=1e-9)
SMALL = ["age", "workclass", "capital_gain", "income"]


class _Stop(Exception):
    """Raised at the entry of the DP step, once its inputs are captured."""


@pytest.fixture(scope="module")
def small(adult) -> tuple[pl.DataFrame, Schema]:
    df, schema = adult
    return df.select(SMALL), Schema(columns=tuple(schema.column(c) for c in SMALL))


def before_dp(monkeypatch, generator: str, df: pl.DataFrame, schema: Schema) -> dict[str, Any]:
    """What smartnoise's fit hands the DP mechanism, without running the mechanism."""
    seen: dict[str, Any] = {}
    if generator == "mst":
        cls = mst_mod.smartnoise_class()

        def stop(self, data, epsilon, delta):
            seen.update(domain=dict(data.domain.config), cardinality=list(self._transformer.cardinality))
            raise _Stop

        monkeypatch.setattr(cls, "MST", stop)
        fit = mst_mod.MSTGenerator().fit
    else:
        cls = aim_mod.smartnoise_class()

        def stop(self, data, workload):
            seen.update(
                domain=dict(data.domain.config),
                cardinality=list(self._transformer.cardinality),
                workload=sorted(workload),
            )
            raise _Stop

        monkeypatch.setattr(cls, "AIM", stop)
        fit = aim_mod.AIMGenerator(max_rounds=2).fit
    with pytest.raises(_Stop):
        fit(df, schema, SPEND)
    seen["public domain"] = prepare(df, schema).discretizer.describe()
    return seen


def with_value(df: pl.DataFrame, row: int, column: str, value: Any) -> pl.DataFrame:
    s = df.get_column(column).to_list()
    s[row] = value
    return df.with_columns(pl.Series(column, s, dtype=df.schema[column]))


@pytest.mark.parametrize("generator", ["mst", "aim"])
def test_domain_is_the_schemas(monkeypatch, adult, generator):
    df, schema = adult
    seen = before_dp(monkeypatch, generator, df, schema)
    expected = Discretizer.from_schema(schema).cardinalities
    assert seen["cardinality"] == expected
    assert list(seen["domain"].values()) == expected


@pytest.mark.parametrize("generator", ["mst", "aim"])
def test_one_records_numeric_extreme_changes_nothing_before_dp(monkeypatch, adult, generator):
    df, schema = adult
    base = before_dp(monkeypatch, generator, df, schema)
    # one record moves to the schema's top values; then the data's maxima shrink well inside
    top = with_value(with_value(df, 0, "age", 90), 0, "capital_gain", 99999)
    lower = df.with_columns(pl.col("age").clip(17, 60), pl.col("capital_gain").clip(0, 1000))
    assert df["age"].max() != lower["age"].max()
    for edited in (top, lower):
        assert before_dp(monkeypatch, generator, edited, schema) == base


@pytest.mark.parametrize("generator", ["mst", "aim"])
def test_category_held_by_one_record_never_widens_the_domain(monkeypatch, adult, generator):
    df, schema = adult
    nobody = df.with_columns(
        pl.when(pl.col("workclass").is_in(["Never-worked", "Without-pay"]))
        .then(pl.lit("Private"))
        .otherwise(pl.col("workclass"))
        .alias("workclass")
    )
    one = with_value(nobody, 5, "workclass", "Never-worked")
    seen = [before_dp(monkeypatch, generator, d, schema) for d in (df, nobody, one)]
    assert seen[0] == seen[1] == seen[2]
    workclass = schema.names.index("workclass")
    assert seen[0]["cardinality"][workclass] == len(schema.column("workclass").categories) == 9


def test_category_outside_the_schema_is_mapped_or_refused_never_added(adult):
    _, schema = adult
    raw = read_raw(DATA / "adult_2000.csv")
    # native_country declares an 'other' category: a country of its own goes there
    atlantis = with_value(raw, 3, "native_country", "Atlantis")
    conformed, rep = conform(atlantis, schema)
    assert rep.mapped_to_other == {"native_country": 1}
    assert prepare(conformed, schema).discretizer.cardinalities == Discretizer.from_schema(schema).cardinalities
    # workclass has no 'other': conforming refuses, and so does encoding unconformed data
    with pytest.raises(InputError, match=r"column 'workclass': 1 values outside the schema's categories"):
        conform(with_value(raw, 3, "workclass", "Astronaut"), schema)
    df, _ = conform(raw, schema)
    with pytest.raises(InputError, match=r"column 'workclass': 1 values outside the schema's categories"):
        prepare(with_value(df, 3, "workclass", "Astronaut"), schema)


def test_smartnoise_default_transformer_would_leak_a_rare_category(adult):
    """Documents the leak we avoid: smartnoise's own transformer takes its categories from the data."""
    from snsynth.transform.table import TableTransformer

    df, _ = adult
    pdf = df.select("workclass", "income").to_pandas()
    without = pdf[pdf["workclass"] != "Never-worked"].reset_index(drop=True)
    cards = []
    for frame in (without, pdf):
        tt = TableTransformer.create(frame, style="cube", categorical_columns=["workclass", "income"])
        tt.fit(frame)
        cards.append(tt.cardinality)
    assert cards[0] != cards[1]  # one record changed the domain: not DP


def test_mst_never_gives_the_estimator_the_row_count_and_draws_selection_from_os_entropy(monkeypatch, small):
    from mbi import estimation

    df, schema = small
    totals: list[Any] = []
    prngs: list[Any] = []
    real = estimation.mirror_descent
    cls = mst_mod.smartnoise_class()
    real_em = cls.exponential_mechanism

    def spy(*args, **kwargs):
        totals.append(kwargs.get("known_total"))
        return real(*args, **kwargs)

    def spy_em(self, q, eps, sensitivity, prng=np.random, monotonic=False):
        prngs.append(prng)
        return real_em(self, q, eps, sensitivity, prng=prng, monotonic=monotonic)

    monkeypatch.setattr(estimation, "mirror_descent", spy)
    monkeypatch.setattr(cls, "exponential_mechanism", spy_em)
    fitted = mst_mod.MSTGenerator().fit(df, schema, SPEND)
    assert len(totals) == 2 and all(t is not None for t in totals)
    assert all(t != float(df.height) for t in totals)
    assert fitted.estimated_rows == round(totals[-1])
    assert len(prngs) == len(SMALL) - 1
    assert all(isinstance(p, np.random.Generator) for p in prngs)
    # the fitted model keeps no smartnoise/mbi object (smartnoise's stores num_rows = len(data))
    modules: set[str] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            modules.add(module.split(".")[0])
            return super().find_class(module, name)

    Recorder(io.BytesIO(pickle.dumps(fitted))).load()
    assert modules <= {"privacy", "numpy", "builtins", "copyreg", "_codecs"}, modules


def test_aim_estimates_total_from_noise_draws_from_os_entropy_and_prints_nothing(monkeypatch, small, capsys):
    import snsynth.aim.aim as sn_aim
    import snsynth.utils as sn_utils
    from mbi import estimation

    df, schema = small
    totals: list[Any] = []
    prngs: list[Any] = []
    real = estimation.mirror_descent
    real_em = sn_aim.exponential_mechanism

    def spy(*args, **kwargs):
        totals.append(kwargs.get("known_total"))
        return real(*args, **kwargs)

    def spy_em(*args, **kwargs):
        prngs.append(sn_utils.prng)  # what smartnoise's mechanism will draw from
        return real_em(*args, **kwargs)

    monkeypatch.setattr(estimation, "mirror_descent", spy)
    monkeypatch.setattr(sn_aim, "exponential_mechanism", spy_em)
    aim_mod.AIMGenerator(max_rounds=2).fit(df, schema, SPEND)
    assert totals and all(t is None for t in totals)  # mbi estimates it from the noisy measurements
    assert len(prngs) == 2 and all(isinstance(p, np.random.Generator) for p in prngs)
    assert sn_utils.prng is np.random and sn_aim.prng is np.random
    assert capsys.readouterr().out == ""


def test_mechanism_randomness_is_fresh_and_restored():
    import snsynth.aim.aim as sn_aim
    import snsynth.utils as sn_utils

    draws = []
    for _ in range(2):
        np.random.seed(1234)  # a user seed must not fix the mechanism
        with mechanism_randomness() as prng:
            assert sn_utils.prng is prng and sn_aim.prng is prng
            draws.append(prng.integers(0, 2**63))
    assert draws[0] != draws[1]
    with pytest.raises(RuntimeError, match="boom"):
        with mechanism_randomness():
            raise RuntimeError("boom")
    assert sn_utils.prng is np.random and sn_aim.prng is np.random


def _cks_delta(rho: float, eps: float) -> float:
    """Canonne, Kamath & Steinke (2020), Prop. 12/Cor. 13: the zCDP -> (eps, delta) conversion."""

    def log_delta(t: float) -> float:
        a = 1 + np.exp(t)
        return (a - 1) * (a * rho - eps) + a * np.log1p(-1 / a) - np.log(a - 1)

    res = optimize.minimize_scalar(log_delta, bounds=(-20, 20), method="bounded", options={"xatol": 1e-12})
    return float(np.exp(res.fun))


@pytest.mark.parametrize("eps, delta", [(1.0, 1e-9), (0.1, 1e-6), (5.0, 1e-5), (10.0, 1e-9)])
def test_rho_conversion_against_closed_forms(eps, delta):
    rho = zcdp_rho(PrivacySpend(epsilon=eps, delta=delta))
    # tight (CKS) conversion of rho gives back delta at eps
    assert _cks_delta(rho, eps) == pytest.approx(delta, rel=1e-6)
    # the classic bound eps = rho + 2 sqrt(rho log(1/delta)) is looser: it would allow less rho
    classic = (np.sqrt(np.log(1 / delta) + eps) - np.sqrt(np.log(1 / delta))) ** 2
    assert classic < rho
    # a sensitivity-1 Gaussian with variance 1/(2 rho) is (eps, delta)-DP (Balle & Wang 2018)
    s = 1 / np.sqrt(2 * rho)
    exact = stats.norm.cdf(1 / (2 * s) - eps * s) - np.exp(eps) * stats.norm.cdf(-1 / (2 * s) - eps * s)
    assert exact <= delta
