"""dpmarkov on real sequences (pbcseq, the Berka slice) and on adversarial input.

Two real fits (MST included) are shared by the module: pbcseq at order 1 and the Berka slice at
order 2, both at a high epsilon so that a broken mechanism shows as a distance to the real data.
The other tests replace MST by a recording test double (``FakeMST``): they check the sequence
part's noise, sensitivity and structure in milliseconds, and what is handed to MST.
"""

from __future__ import annotations

import math
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from privacy.errors import InputError
from privacy.generators.sequential import dpmarkov as dm
from privacy.generators.sequential.discrete import (
    CellCodec,
    IntBins,
    conditional_rows,
    pooled_distribution,
    simplex_projection,
)
from privacy.generators.sequential.dpmarkov import (
    DPMarkovGenerator,
    build_layout,
    count_tables,
    encode_data,
    plan_budget,
    transition_distributions,
)
from privacy.generators.tabular.base import GeneratorCard
from privacy.schema import Schema
from privacy.sequences import SequenceData, conform_sequences
from privacy.spend import PrivacySpend
from privacy.table import read_raw

DATA = Path(__file__).resolve().parents[1] / "data"
HIGH = PrivacySpend(epsilon=1000.0, delta=1e-5)


def load_pbc() -> tuple[pl.DataFrame, Schema]:
    return read_raw(DATA / "pbcseq.csv"), Schema.load(DATA / "pbcseq_schema.yaml")


def tv(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    return 0.5 * float(np.abs(p / p.sum() - q / q.sum()).sum())


@pytest.fixture(scope="module")
def pbc() -> tuple[SequenceData, Schema]:
    raw, schema = load_pbc()
    return conform_sequences(raw, None, schema)[0], schema


@pytest.fixture(scope="module")
def berka() -> tuple[SequenceData, Schema]:
    schema = Schema.load(DATA / "berka_schema.yaml")
    data, _ = conform_sequences(
        read_raw(DATA / "berka_transactions.csv"), read_raw(DATA / "berka_accounts.csv"), schema
    )
    return data, schema


@pytest.fixture(scope="module")
def pbc_fit(pbc: tuple[SequenceData, Schema]) -> tuple[Any, list[tuple[str, float | None]], float]:
    """The real fit of pbcseq at order 1, eps 1000 (about 20 s on 2 cores: MST's JAX compilation)."""
    data, schema = pbc
    messages: list[tuple[str, float | None]] = []
    t0 = time.perf_counter()
    fitted = DPMarkovGenerator().fit(data, schema, HIGH, progress=lambda m, f: messages.append((m, f)))
    return fitted, messages, time.perf_counter() - t0


@pytest.fixture(scope="module")
def berka_fit(berka: tuple[SequenceData, Schema]) -> Any:
    """The real fit of the Berka slice at order 2, eps 1000 (about 12 s more: slow tests only)."""
    data, schema = berka
    return DPMarkovGenerator(order=2).fit(data, schema, HIGH)


# -- a recording stand-in for MST (tests of the sequence part only) ------------------------------------


class FakeEntityModel:
    """Resamples the per-entity rows it was given: a test double, not a DP model."""

    def __init__(self, table: pl.DataFrame, rho: float) -> None:
        self.table = table
        self.card = GeneratorCard(
            name="mst", parameters={"rho_used": rho, "edges": [], "compressed_columns": []},
            library_versions={}, spend=PrivacySpend(epsilon=1.0, delta=1e-5), accounting="", unit_of_privacy="",
        )

    @property
    def estimated_rows(self) -> int:
        return self.table.height

    def sample(self, n: int, seed: int) -> pl.DataFrame:
        idx = np.random.default_rng(seed).integers(0, self.table.height, n)
        return self.table[idx]


class FakeMST:
    calls: list[dict[str, Any]] = []

    def fit(self, data: pl.DataFrame, schema: Schema, spend: PrivacySpend, *, progress: Any = None,
            rho: float | None = None) -> FakeEntityModel:
        assert rho is not None
        FakeMST.calls.append({"table": data, "schema": schema, "rho": rho})
        return FakeEntityModel(data, rho)


@pytest.fixture
def fake_mst(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    FakeMST.calls = []
    monkeypatch.setattr(dm, "MSTGenerator", FakeMST)
    return FakeMST.calls


def stats(data: SequenceData, schema: Schema, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Length histogram, (s_{t-1}, s_t) pair counts, and one non-state column's cells."""
    lay = build_layout(schema)
    enc = encode_data(data, lay)
    lengths = np.bincount(enc.lengths, minlength=schema.seq.max_events + 1)[1:]
    later = np.flatnonzero(enc.pos >= 1)
    pairs = np.bincount(enc.state[later - 1] * lay.n_states + enc.state[later], minlength=lay.n_states**2)
    j = [c.name for c in lay.others].index(column)
    cells = np.bincount(enc.others[j], minlength=lay.others[j].size)
    return lengths, pairs, cells


def assert_contract(syn: SequenceData, real: SequenceData, schema: Schema, n: int) -> None:
    """The output contract of ``FittedSequenceGenerator.sample``."""
    spec = schema.seq
    e, o = spec.entity, spec.order
    assert syn.statics.schema == real.statics.schema and syn.events.schema == real.events.schema
    assert syn.n_entities == n
    assert sorted(syn.statics.get_column(e).to_list(), key=int) == [str(i) for i in range(1, n + 1)]
    assert syn.statics.get_column(e).to_list() == sorted(syn.statics.get_column(e).to_list())
    # events grouped by entity in statics order
    ev_keys = syn.events.get_column(e).unique(maintain_order=True).to_list()
    assert ev_keys == syn.statics.get_column(e).to_list()
    lengths = syn.lengths()
    assert lengths.min() >= 1 and lengths.max() <= spec.max_events
    order = syn.events.get_column(o)
    assert order.min() >= spec.order_min and order.max() <= spec.order_max
    gaps = syn.gaps().drop_nulls()
    if gaps.len():
        assert gaps.min() >= spec.gap_min and gaps.max() <= spec.gap_max
        if not spec.ties:
            assert gaps.min() > 0
    # conforming the long table changes nothing: every value in its domain, nothing truncated
    back, rep = conform_sequences(syn.to_long(), None, schema)
    assert rep.total_changed == 0 and rep.gaps_outside == 0 and rep.truncated_entities == 0
    assert back.events.equals(syn.events) and back.statics.equals(syn.statics)
    # nulls exactly where the schema allows them
    for col in schema.columns:
        frame = syn.statics if col.name in spec.static else syn.events
        if not col.nullable:
            assert frame.get_column(col.name).null_count() == 0, col.name


# -- real fits: contract ------------------------------------------------------------------------------


def test_pbcseq_sample_meets_the_output_contract(pbc_fit, pbc):
    fitted, _, seconds = pbc_fit
    data, schema = pbc
    print(f"dpmarkov fit on pbcseq (312 patients) at eps 1000: {seconds:.1f} s")
    syn = fitted.sample(400, seed=3)
    assert_contract(syn, data, schema, 400)
    # missing lab values appear where the real data has them
    for col in ("chol", "platelet", "alk.phos", "ascites"):
        assert data.events.get_column(col).null_count() > 0
        assert syn.events.get_column(col).null_count() > 0, col
    # integer columns come out as integers, inside the public bounds
    plate = syn.events.get_column("platelet").drop_nulls()
    assert plate.dtype == pl.Int64 and plate.min() >= 0 and plate.max() <= 1000


def _check_berka_order2(berka_fit: Any, berka: tuple[SequenceData, Schema]) -> None:
    data, schema = berka
    syn = berka_fit.sample(300, seed=5)
    assert_contract(syn, data, schema, 300)
    assert berka_fit.card.parameters["order"] == 2
    # ties are allowed here and frequent in the real data (several transactions a day)
    assert int((syn.gaps().drop_nulls() == 0).sum()) > 0
    # the nullable state column: missing is a state of its own and is generated
    assert syn.events.get_column("operation").null_count() > 0
    assert syn.events.get_column("k_symbol").null_count() > 0
    assert "<missing>" in berka_fit.card.parameters["state_cells"]["operation"]
    # order 2: the table has a START row block; (S + 1) * S * S cells
    s = berka_fit.card.parameters["state_count"]
    assert s == 3 * 6
    assert berka_fit.transitions.shape == (s + 1, s, s)
    assert np.allclose(berka_fit.transitions.sum(axis=-1), 1.0)
    real_ties = float((data.gaps().drop_nulls() == 0).mean())
    syn_ties = float((berka_fit.sample(1000, seed=2).gaps().drop_nulls() == 0).mean())
    assert abs(real_ties - syn_ties) < 0.05, (real_ties, syn_ties)


def test_berka_order2_chain_meets_the_output_contract(berka, fake_mst):
    """The order-2 chain with ties and a nullable state column (per-entity rows from the double)."""
    data, schema = berka
    _check_berka_order2(DPMarkovGenerator(order=2).fit(data, schema, HIGH), berka)


@pytest.mark.slow
def test_berka_order2_end_to_end_with_mst(berka_fit, berka):
    _check_berka_order2(berka_fit, berka)
    syn = berka_fit.sample(1000, seed=2)
    real_len = np.bincount(berka[0].lengths(), minlength=65)
    syn_len = np.bincount(syn.lengths(), minlength=65)
    # 29 of the 150 accounts hit the cap of 64 events; sequences may end earlier at the horizon only
    assert tv(real_len, syn_len) < 0.2


def test_sample_is_deterministic_per_seed_and_survives_pickling(pbc_fit):
    fitted, *_ = pbc_fit
    a, b = fitted.sample(60, seed=11), fitted.sample(60, seed=11)
    assert a.statics.equals(b.statics) and a.events.equals(b.events)
    c = fitted.sample(60, seed=12)
    assert not c.events.equals(a.events)
    clone = pickle.loads(pickle.dumps(fitted))
    d = clone.sample(60, seed=11)
    assert d.statics.equals(a.statics) and d.events.equals(a.events)
    assert clone.card == fitted.card and clone.estimated_rows == fitted.estimated_rows
    empty = fitted.sample(0, seed=1)
    assert empty.n_entities == 0 and empty.events.height == 0
    assert empty.events.schema == a.events.schema and empty.statics.schema == a.statics.schema
    for bad in (-1, 1.5, True):
        with pytest.raises(InputError):
            fitted.sample(bad, seed=1)
        with pytest.raises(InputError):
            fitted.sample(3, seed=bad)


# -- real fits: utility at high epsilon ---------------------------------------------------------------


def test_high_epsilon_reproduces_lengths_transitions_and_a_lab_column(pbc_fit, pbc):
    fitted, *_ = pbc_fit
    data, schema = pbc
    real = stats(data, schema, "chol")
    syn = stats(fitted.sample(3000, seed=0), schema, "chol")
    uniform = [tv(r, np.ones_like(r)) for r in real]  # what a model that learned nothing scores
    got = [tv(r, s) for r, s in zip(real, syn)]
    # lengths: uniform 0.23; transitions: uniform 0.78; cholesterol cells with missing: uniform 0.40
    assert got[0] < 0.06 < uniform[0] / 3, (got, uniform)
    assert got[1] < 0.15 < uniform[1] / 3, (got, uniform)
    assert got[2] < 0.06 < uniform[2] / 3, (got, uniform)
    # the state rarely changes between visits, in the real data and in the synthetic data
    s = build_layout(schema).n_states
    stay_real = np.trace(real[1].reshape(s, s)) / real[1].sum()
    stay_syn = np.trace(syn[1].reshape(s, s)) / syn[1].sum()
    assert stay_real > 0.6 and abs(stay_real - stay_syn) < 0.05, (stay_real, stay_syn)
    assert abs(fitted.estimated_rows - data.n_entities) <= 5


# -- the card -----------------------------------------------------------------------------------------


def test_card_states_the_split_sensitivities_and_sigmas(pbc_fit, pbc):
    fitted, messages, _ = pbc_fit
    _, schema = pbc
    card = fitted.card
    p = card.parameters
    m = schema.seq.max_events
    assert card.name == "dpmarkov"
    assert card.unit_of_privacy == schema.seq.privacy_unit()
    assert card.spend.epsilon == HIGH.epsilon and card.spend.delta == HIGH.delta
    rho = card.spend.rho
    assert rho is not None and rho == pytest.approx(p["rho"])
    # sensitivities derived from max_events: the default per-entity L2 clip sqrt(max_events - 1) for
    # transitions and gaps and sqrt(max_events) per event column, in fixed point (rounded up to 1/1024);
    # sigmas from the formula rho = Delta^2 / (2 sigma^2)
    others = [c.name for c in schema.event_columns if c.name not in schema.seq.state]
    q = dm.FIXED_POINT
    t, e = math.ceil(q * math.sqrt(m - 1)) / q, math.ceil(q * math.sqrt(m)) / q
    assert p["contribution"] == dm.DEFAULT_CONTRIBUTION == "l2"
    assert p["sensitivities"] == {"transitions": t, "gaps": t, **{f"events:{c}": e for c in others}}
    assert p["clip"]["transitions"] == pytest.approx(math.sqrt(m - 1)) and e == 4.0
    for name, sigma in p["sigmas"].items():
        assert sigma == pytest.approx(p["sensitivities"][name] / math.sqrt(2 * p["rho_parts"][name]), rel=1e-8)
    # shares: the defaults, all parts present; the parts add up to rho (composition)
    assert p["shares"] == pytest.approx(dm.DEFAULT_SHARES)
    assert sum(p["rho_parts"].values()) == pytest.approx(rho, rel=1e-12)
    assert p["rho_parts"]["entities"] == pytest.approx(0.3 * rho)
    for c in others:
        assert p["rho_parts"][f"events:{c}"] == pytest.approx(0.3 * rho / len(others))
    assert rho * (1 - 1e-6) <= p["rho_used"] <= rho
    assert p["entity_model"]["rho"] == pytest.approx(p["rho_parts"]["entities"])
    assert p["state_columns"] == ["stage", "edema"] and p["state_count"] == 12
    assert "zero-concentrated" in card.accounting and "OpenDP" in card.accounting
    assert f"L2 sensitivity {t:.6g} counts" in card.accounting and "L2 sensitivity 4 counts" in card.accounting
    assert "fixed-point clipped counts" in card.accounting
    assert {"state space", "gap bins", "entity count (estimated_rows)"} <= set(card.domain_sources)
    assert {"opendp", "smartnoise-synth", "numpy"} <= set(card.library_versions)
    assert messages[0][0].startswith("dpmarkov") and messages[-1] == ("dpmarkov: done", 1.0)
    assert all(f is None or 0.0 <= f <= 1.0 for _, f in messages)


# -- DP properties (MST replaced by a recording double) -----------------------------------------------


def test_tiny_epsilon_noise_is_visible_and_fresh_each_fit(pbc, fake_mst):
    data, schema = pbc
    tiny = PrivacySpend(epsilon=0.05, delta=1e-5)
    lay = build_layout(schema)
    real = stats(data, schema, "chol")[1].reshape(lay.n_states, lay.n_states).astype(float)
    real_rows = real / np.maximum(real.sum(axis=1, keepdims=True), 1)
    fits = []
    for _ in range(2):
        np.random.seed(0)  # a seeded global generator must not fix the noise
        fits.append(DPMarkovGenerator(backoff=0.0).fit(data, schema, tiny))
    a, b = fits[0].transitions, fits[1].transitions
    assert not np.allclose(a, b)
    used = real.sum(axis=1) > 0
    assert np.abs(a - real_rows)[used].sum(axis=1).mean() / 2 > 0.3  # far from the truth
    # the noise on a row's total dwarfs every row of the (clipped) table: with the default back-off
    # (2 sd; a pure-noise row passes with probability 2.3%) nearly every row uses the pooled distribution
    fitted = DPMarkovGenerator().fit(data, schema, tiny)
    _, meas, _ = plan_budget(lay, 1.0, dict(dm.DEFAULT_SHARES))
    clipped = count_tables(encode_data(data, lay), lay, meas)["transitions"] / meas[0].resolution
    assert meas[0].name == "transitions" and clipped.sum() <= real.sum()
    row_sd = fitted.card.parameters["sigmas"]["transitions"] * math.sqrt(lay.n_states)
    assert row_sd > clipped.sum(axis=1).max()
    assert fitted.card.parameters["backed_off_rows"]["transitions"] >= lay.n_states - 4
    assert np.allclose(fitted.transitions.sum(axis=1), 1.0)


@pytest.mark.parametrize("options", [{"contribution": "counts"}, {"contribution": "l2"}])
def test_nothing_chosen_before_the_noise_depends_on_the_data(fake_mst, options):
    raw, schema = load_pbc()
    base, _ = conform_sequences(raw, None, schema)
    # one patient with extreme lab values and a late, far-apart visit; another with 500 visits
    extreme = raw.with_columns(
        pl.when(pl.col("id") == "1").then(pl.lit("39.9")).otherwise(pl.col("bili")).alias("bili"),
        pl.when((pl.col("id") == "1") & (pl.col("day") != "0")).then(pl.lit("5499")).otherwise(pl.col("day")).alias("day"),
    )
    long = raw.filter(pl.col("id") == "2").head(1)
    huge = pl.concat([long.with_columns(pl.lit(str(7 * i)).alias("day"), pl.lit("999").alias("id"))
                      for i in range(500)])
    changed, rep = conform_sequences(pl.concat([extreme, huge]), None, schema)
    assert rep.truncated_entities == 1 and changed.lengths().max() == schema.seq.max_events
    gen = DPMarkovGenerator(**options)
    f1, f2 = gen.fit(base, schema, HIGH), gen.fit(changed, schema, HIGH)
    structural = ("state_cells", "state_count", "length_cells", "start_cells", "gap_bins", "sigmas",
                  "sensitivities", "table_cells", "rho_parts", "shares", "entity_table_columns", "contribution",
                  "clip", "fixed_point_resolution", "integer_sensitivities", "mechanisms")
    for key in structural:
        assert f1.card.parameters[key] == f2.card.parameters[key], key
    # what MST is given: the same public schema and rho, one row per entity
    first, second = fake_mst
    assert first["schema"] == second["schema"] == gen.layout(schema).entity_schema
    assert first["rho"] == second["rho"]
    assert first["table"].height == base.n_entities and second["table"].height == changed.n_entities
    assert gen.layout(schema) == f1.layout == f2.layout  # built from the schema alone


@pytest.mark.parametrize("contribution", ["counts", "l2"])
def test_every_entity_moves_each_table_by_at_most_the_stated_sensitivity(pbc, berka, contribution):
    for data, schema in (pbc, berka):
        for order in (1, 2):
            lay = build_layout(schema, order=order)
            _, meas, _ = plan_budget(lay, 1.0, dict(dm.DEFAULT_SHARES), contribution=contribution)
            # l2: every table is clipped (max_events 16 and 64 exceed the default bounds' squares)
            assert all((x.resolution == dm.FIXED_POINT) == (contribution == "l2") for x in meas)
            full = count_tables(encode_data(data, lay), lay, meas)
            longest = np.argsort(data.lengths())[-8:]
            rest = np.ones(data.n_entities, dtype=bool)
            rest[longest] = False
            # the tables are sums over entities: removing some entities subtracts exactly their tables
            part = count_tables(encode_data(data.take(rest), lay), lay, meas)
            for i in longest:
                mask = np.zeros(data.n_entities, dtype=bool)
                mask[i] = True
                own = count_tables(encode_data(data.take(mask), lay), lay, meas)
                for m in meas:  # the measured integers (raw counts, or clipped counts in fixed point)
                    assert np.linalg.norm(own[m.name].ravel()) <= m.int_sensitivity
                    part[m.name] += own[m.name]
            for m in meas:
                assert np.array_equal(part[m.name], full[m.name])


def test_the_sensitivity_bound_is_reached_by_a_worst_case_entity():
    raw, schema = load_pbc()
    m = schema.seq.max_events
    # one patient seen every 182 days, with identical values at every visit: one cell per table
    row = raw.filter(pl.col("id") == "2").head(1)
    worst = pl.concat([row.with_columns(pl.lit(str(182 * i)).alias("day")) for i in range(m)])
    data, _ = conform_sequences(worst, None, schema)
    lay = build_layout(schema)
    _, meas, _ = plan_budget(lay, 1.0, dict(dm.DEFAULT_SHARES), contribution="counts")
    own = count_tables(encode_data(data, lay), lay, meas)
    for meas_ in meas:
        assert np.linalg.norm(own[meas_.name].ravel()) == meas_.sensitivity
    assert {x.sensitivity for x in meas} == {m - 1, m}


def test_delta_zero_is_refused_before_the_data_is_read(pbc):
    _, schema = pbc
    with pytest.raises(InputError, match="delta"):
        DPMarkovGenerator().fit(None, schema, PrivacySpend(epsilon=1.0, delta=0.0))  # type: ignore[arg-type]


def _wide_state_schema(categories: int) -> Schema:
    return Schema.from_dict({
        "kind": "sequential",
        "sequence": {"entity": "id", "order": {"column": "t", "type": "integer", "min": 0, "max": 100,
                                               "gap_min": 1, "gap_max": 10},
                     "max_events": 8, "state": ["a", "b"]},
        "columns": {"a": {"type": "categorical", "categories": [str(i) for i in range(categories)]},
                    "b": {"type": "categorical", "categories": ["x", "y", "z"], "nullable": True}},
    })


def test_an_oversize_state_space_is_refused_with_one_clear_message_before_the_data():
    huge = _wide_state_schema(1000)  # 4,000 states: 16 million transition cells
    with pytest.raises(InputError, match=r"state space has 4,000 states \(a: 1000 x b: 4 cells\)"):
        DPMarkovGenerator().fit(None, huge, HIGH)  # type: ignore[arg-type]
    mid = _wide_state_schema(40)  # 160 states: order 1 fits (25,600 cells), order 2 does not (4.1 million)
    assert build_layout(mid, order=1).n_states == 160
    with pytest.raises(InputError, match="or use order 1"):
        DPMarkovGenerator(order=2).fit(None, mid, HIGH)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [
    {"order": 3}, {"order": True}, {"order": "1"}, {"entity_share": 0}, {"gap_share": -0.1},
    {"event_share": float("nan")}, {"transition_share": "0.2"}, {"backoff": -1}, {"backoff": float("inf")},
    {"gap_bins": 1}, {"gap_bins": 2.5}, {"start_bins": 10_000},
    {"contribution": "l1"}, {"contribution": None}, {"contribution": "L2"}, {"contribution": "l2", "clip": 0},
    {"contribution": "l2", "clip": -2.0}, {"contribution": "l2", "clip": float("inf")},
    {"contribution": "l2", "clip": "4"}, {"contribution": "l2", "clip": True}, {"contribution": "counts", "clip": 4},
])
def test_bad_options_are_refused(options):
    with pytest.raises(InputError, match="dpmarkov"):
        DPMarkovGenerator(**options)


def test_unconformed_data_is_refused(pbc, fake_mst):
    data, schema = pbc
    # an entity with more events than max_events breaks the sensitivity argument: refuse it
    extra = data.events.filter(pl.col("id") == "1")
    too_long = pl.concat([data.events] + [extra] * 10)
    with pytest.raises(InputError, match="max_events"):
        DPMarkovGenerator().fit(SequenceData(data.statics, too_long, data.spec), schema, HIGH)
    with pytest.raises(InputError, match="conform"):
        DPMarkovGenerator().fit(SequenceData(data.statics, data.events.drop("chol"), data.spec), schema, HIGH)
    orphan = data.events.with_columns(pl.when(pl.col("id") == "1").then(pl.lit("nobody")).otherwise(pl.col("id"))
                                      .alias("id"))
    with pytest.raises(InputError, match="no entity"):
        DPMarkovGenerator().fit(SequenceData(data.statics, orphan, data.spec), schema, HIGH)
    assert fake_mst == []


def test_budget_shares_renormalise_over_the_parts_a_schema_needs(fake_mst):
    # a single event per entity: no transitions, no gaps; the entity and event parts share rho
    schema = Schema.from_dict({
        "kind": "sequential",
        "sequence": {"entity": "id", "order": {"column": "t", "type": "integer", "min": 0, "max": 50,
                                               "gap_min": 1, "gap_max": 10},
                     "max_events": 1, "static": ["g"]},
        "columns": {"g": {"type": "categorical", "categories": ["a", "b"], "nullable": True},
                    "v": {"type": "float", "min": 0, "max": 1, "nullable": True}},
    })
    raw = pl.DataFrame({"id": [str(i) for i in range(40)], "t": [str(i % 50) for i in range(40)],
                        "g": [None if i % 5 == 0 else "ab"[i % 2] for i in range(40)],
                        "v": [None if i % 3 == 0 else str(i / 40) for i in range(40)]})
    data, _ = conform_sequences(raw, None, schema)
    fitted = DPMarkovGenerator().fit(data, schema, HIGH)
    p = fitted.card.parameters
    assert set(p["rho_parts"]) == {"entities", "events:v"}
    assert p["shares"] == pytest.approx({"entities": 0.5, "events": 0.5})
    assert p["sensitivities"] == {"events:v": 1} and p["length_cells"] is None and p["gap_bins"] is None
    syn = fitted.sample(200, seed=1)
    assert_contract(syn, data, schema, 200)
    assert syn.statics.get_column("g").null_count() > 0  # a nullable static column keeps its missing cell


def test_sequences_end_at_the_public_horizon_without_ties(fake_mst):
    # a short order range: many sampled sequences would run past order_max; no tie may appear
    schema = Schema.from_dict({
        "kind": "sequential",
        "sequence": {"entity": "id", "order": {"column": "t", "type": "integer", "min": 0, "max": 30,
                                               "gap_min": 2, "gap_max": 9},
                     "max_events": 6},
        "columns": {"s": {"type": "categorical", "categories": ["a", "b"]},
                    "n": {"type": "integer", "min": -3, "max": 3}},
    })
    rows = []
    for i in range(60):
        for j in range(1 + i % 6):
            rows.append({"id": str(i), "t": str(min(30, (i % 7) + 5 * j)), "s": "ab"[(i + j) % 2], "n": str(j - 3)})
    data, _ = conform_sequences(pl.DataFrame(rows), None, schema)
    fitted = DPMarkovGenerator().fit(data, schema, HIGH)
    syn = fitted.sample(500, seed=4)
    assert_contract(syn, data, schema, 500)
    assert syn.events.get_column("n").dtype == pl.Int64


# -- post-processing helpers ---------------------------------------------------------------------------


def test_simplex_projection_and_back_off_give_valid_distributions():
    x = simplex_projection(np.array([5.0, -1.0, 2.0, -3.0]), 3.0)
    assert np.allclose(x, [3.0, 0.0, 0.0, 0.0])
    assert np.allclose(simplex_projection(np.array([1.0, 1.0]), 2.0), [1.0, 1.0])
    rng = np.random.default_rng(0)
    for order in (1, 2):
        shape = (5, 5) if order == 1 else (6, 5, 5)
        y = rng.normal(0, 10, size=shape)
        y[..., 0, :] += 200  # one well-measured row (per first index)
        p, backed = transition_distributions(y, 10.0, order, 2.0)
        assert p.shape == shape and (p >= 0).all() and np.allclose(p.sum(axis=-1), 1.0)
        assert 0 < backed < math.prod(shape[:-1])
    pooled, used = pooled_distribution(np.array([-5.0, 1.0, -2.0]), 1.0, 2.0)
    assert not used and np.allclose(pooled, 1 / 3)
    rows, backed = conditional_rows(np.array([[50.0, 0.0], [0.1, -0.3]]), 1.0, 2.0, np.array([0.25, 0.75]))
    assert backed == 1 and np.allclose(rows, [[1.0, 0.0], [0.25, 0.75]])


def test_public_bins_cover_the_bounds_from_the_schema_alone(pbc, berka):
    for lo, hi, n in ((0, 366, 16), (1, 2200, 16), (0, 5, 16), (3, 3, 4)):
        b = IntBins.geometric(lo, hi, n)
        assert b.lo == lo and b.hi == hi and b.size <= n and b.lows[0] == b.highs[0] == lo
        v = np.arange(lo, hi + 1)
        assert np.all(np.asarray(b.lows)[b.encode(v)] <= v) and np.all(np.asarray(b.highs)[b.encode(v)] >= v)
    lay = build_layout(pbc[1])
    assert lay.start_bins.as_list()[0] == [0, 0]  # order_min alone: every patient starts on day 0
    assert lay.length_bins is not None and lay.length_bins.size == 16
    berka_lay = build_layout(berka[1])
    assert berka_lay.gap_bins is not None and berka_lay.gap_bins.as_list()[0] == [0, 0]  # same-day events
    long_cap = IntBins.from_lows([1], 1)
    assert long_cap.size == 1
    big = dm._length_bins(10_000)
    assert big is not None and big.highs[-1] == big.lows[-1] == 10_000 and big.size <= 64
    codec = CellCodec.from_column(berka[1].column("operation"))
    assert codec.size == 6 and codec.labels()[-1] == "<missing>"


# -- per-entity contribution bounding (contribution="l2") --------------------------------------------


def _expected(kind: str, m: int, clip: float | None) -> tuple[float | None, int, int]:
    """(clip, resolution, integer sensitivity) of a table whose entity adds at most ``m`` counts."""
    if kind == "counts":
        return None, 1, m
    c = min(math.sqrt(m) if clip is None else clip, m)
    return (c, 1, m) if c >= m else (c, dm.FIXED_POINT, math.ceil(dm.FIXED_POINT * c))


@pytest.mark.parametrize("kind, clip", [("counts", None), ("l2", None), ("l2", 2.5), ("l2", 15.5)])
def test_card_sensitivity_and_sigma_follow_the_formula_of_each_mode(pbc, fake_mst, kind, clip):
    data, schema = pbc
    m = schema.seq.max_events
    options: dict[str, Any] = {"contribution": kind} | ({} if clip is None else {"clip": clip})
    fitted = DPMarkovGenerator(**options).fit(data, schema, PrivacySpend(epsilon=2.0, delta=1e-6))
    p = fitted.card.parameters
    assert p["contribution"] == kind
    for name in p["sigmas"]:
        most = m if name.startswith("events:") else m - 1
        c, q, d = _expected(kind, most, clip)
        assert p["clip"][name] == (None if c is None else pytest.approx(c))
        assert p["fixed_point_resolution"][name] == q and p["integer_sensitivities"][name] == d
        # the sensitivity in counts is the integer one over the resolution: at most clip + 1/resolution
        assert p["sensitivities"][name] == pytest.approx(d / q, rel=1e-15)
        if c is not None:
            assert c <= p["sensitivities"][name] <= c + 1 / q
        # rho = Delta^2 / (2 sigma^2) for the part, in counts and in fixed point alike
        assert p["sigmas"][name] == pytest.approx(p["sensitivities"][name] / math.sqrt(2 * p["rho_parts"][name]),
                                                  rel=1e-8)
        assert ("fixed-point" in p["mechanisms"][name]) == (q > 1)
    assert p["rho"] * (1 - 1e-6) <= p["rho_used"] <= p["rho"]
    scaled = any(q > 1 for q in p["fixed_point_resolution"].values())
    assert ("fixed-point clipped counts" in fitted.card.accounting) == scaled == (kind == "l2")
    if clip == 15.5:  # above max_events - 1: transitions and gaps are raw counts, event columns still clipped
        assert p["fixed_point_resolution"]["transitions"] == 1 and p["sensitivities"]["transitions"] == m - 1
    if kind == "l2" and clip is None:  # the default rule: sqrt(max_events - 1), sqrt(max_events) for columns
        assert p["clip"]["transitions"] == pytest.approx(math.sqrt(15)) and p["sensitivities"]["events:chol"] == 4.0


def test_a_concentrated_entity_is_scaled_down_to_the_clip_bound():
    raw, schema = load_pbc()
    m = schema.seq.max_events
    # one patient with identical values at every visit: each table gets all its counts in one cell
    row = raw.filter(pl.col("id") == "2").head(1)
    worst = pl.concat([row.with_columns(pl.lit(str(182 * i)).alias("day")) for i in range(m)])
    data, _ = conform_sequences(worst, None, schema)
    lay = build_layout(schema)
    for clip, rule in ((2.5, lambda k: 2.5), (None, math.sqrt)):
        _, meas, _ = plan_budget(lay, 1.0, dict(dm.DEFAULT_SHARES), contribution="l2", clip=clip)
        own = count_tables(encode_data(data, lay), lay, meas)
        for x in meas:
            cell = own[x.name].ravel()
            assert np.count_nonzero(cell) == 1  # still one cell: the vector is scaled, never spread
            bound = x.resolution * rule(x.max_contribution)  # one cell c: R * c * C / ||c||_2 = R * C
            assert bound - 1 < cell.max() <= bound and np.linalg.norm(cell) <= x.int_sensitivity
    # an entity with counts (3, 4) (norm 5) is scaled to (1.5, 2) at clip 2.5; one of norm sqrt(3) is kept
    ent = np.array([0] * 7 + [1] * 3)
    flat = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 4])
    q = dm.FIXED_POINT
    got = dm.clipped_counts(ent, flat, 6, 2.5, q, math.ceil(2.5 * q))
    assert got.tolist() == [1.5 * q, 2 * q, q, q, q, 0]
    # a vector that rounding pushed over the integer bound is shrunk again in integers
    tight = dm.clipped_counts(ent[:7], flat[:7], 2, 2.5, q, 2000)
    assert np.linalg.norm(tight) <= 2000 and tight[0] * 4 == pytest.approx(tight[1] * 3, abs=4)


def test_l2_estimate_converges_to_the_clipped_tables_at_huge_epsilon(pbc, fake_mst):
    data, schema = pbc
    huge = PrivacySpend(epsilon=1e4, delta=1e-5)  # sigma about 0.06 counts on transitions
    fitted = DPMarkovGenerator(contribution="l2").fit(data, schema, huge)
    lay = fitted.layout
    _, meas, _ = plan_budget(lay, 1.0, dict(dm.DEFAULT_SHARES), contribution="l2")
    exact = count_tables(encode_data(data, lay), lay, meas)
    _, meas_c, _ = plan_budget(lay, 1.0, dict(dm.DEFAULT_SHARES), contribution="counts")
    raw = count_tables(encode_data(data, lay), lay, meas_c)

    def rows(t: np.ndarray) -> np.ndarray:
        t = t.astype(float)
        return t / np.maximum(t.sum(axis=-1, keepdims=True), 1e-12)

    used = raw["transitions"].sum(axis=1) > 0
    w = raw["transitions"].sum(axis=1)[used] / raw["transitions"].sum()
    assert fitted.card.parameters["backed_off_rows"]["transitions"] <= int((~used).sum()) + 1
    # the noise vanishes (sigma 0.06 to 0.07 counts): the estimate is the clipped table, row-normalised
    # (rows with a clipped mass of 50 or more to 0.02, and all rows weighted by the real state frequency)
    assert fitted.gaps is not None
    for name, est in (("transitions", fitted.transitions), ("gaps", fitted.gaps)):
        clipped = exact[name] / dm.FIXED_POINT
        big = clipped.sum(axis=1) >= 50
        assert big.sum() >= 6 and np.abs(est[big] - rows(clipped)[big]).max() < 0.02
    gap_w = raw["gaps"].sum(axis=1) / raw["gaps"].sum()
    assert (gap_w * 0.5 * np.abs(fitted.gaps - rows(exact["gaps"])).sum(axis=1)).sum() < 0.01
    # and clipping only reweights entities: the transitions stay close to the raw counts'
    bias = (w * 0.5 * np.abs(fitted.transitions[used] - rows(raw["transitions"])[used]).sum(axis=1)).sum()
    assert bias < 0.05, bias
    # a lab column's cells, mixed over the real states, match the real marginal
    j = [c.name for c in lay.others].index("chol")
    chol = raw["events:chol"]
    assert tv(chol.sum(axis=0), (fitted.others[j] * chol.sum(axis=1, keepdims=True)).sum(axis=0)) < 0.05


def test_plan_budget_refuses_an_unknown_contribution(pbc):
    with pytest.raises(InputError, match="contribution"):
        plan_budget(build_layout(pbc[1]), 1.0, dict(dm.DEFAULT_SHARES), contribution="l1")
