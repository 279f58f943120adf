"""DPAR (autoregressive transformer over events, DP-SGD per entity, statics by MST) on real sequences.

pbcseq (312 patients, nullable labs, integer days) and the Berka slice (150 accounts, dates with
ties, a static table, nullable categories): the output contract, the accounting (checked against
Google's dp-accounting), per-entity clipping, learning, options, determinism, pickling and the
privacy rule (nothing chosen before the DP steps depends on the data).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from privacy.errors import InputError
from privacy.generators.sequential import dpar as D
from privacy.generators.tabular.deep.accounting import (
    ACCOUNTANT,
    order_epsilon,
    rdp_at,
    rdp_budget,
    rdp_epsilon,
)
from privacy.generators.tabular.deep.dpsgd import Clock, Plan, PrivateModule
from privacy.schema import Schema
from privacy.sequences import SequenceData, conform_sequences
from privacy.spend import PrivacySpend
from privacy.table import read_raw

DATA = Path(__file__).resolve().parents[1] / "data"
SPEND = PrivacySpend(epsilon=4.0, delta=1e-5)
#: a small model and two epochs: the tests check behaviour, not fidelity (about 10 DP-SGD steps)
TINY = {"epochs": 2, "batch_size": 64, "hidden": 32, "layers": 1, "heads": 2, "head_hidden": 32, "sub_bins": 8}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core runner torch's threads spin against other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pbc() -> tuple[SequenceData, Schema]:
    schema = Schema.load(DATA / "pbcseq_schema.yaml")
    return conform_sequences(read_raw(DATA / "pbcseq.csv"), None, schema)[0], schema


@pytest.fixture(scope="module")
def berka() -> tuple[SequenceData, Schema]:
    schema = Schema.load(DATA / "berka_schema.yaml")
    data, _ = conform_sequences(read_raw(DATA / "berka_transactions.csv"), read_raw(DATA / "berka_accounts.csv"),
                                schema)
    return data, schema


@pytest.fixture(scope="module")
def pbc_fit(pbc, one_torch_thread):
    """One DP fit on pbcseq at eps 4 (MST on the statics + about 10 DP-SGD steps)."""
    data, schema = pbc
    from privacy.generators.tabular.mst import smartnoise_class

    smartnoise_class()  # importing smartnoise draws from numpy's global generator; not fit's doing
    torch_before = torch.get_rng_state()
    np_before = np.random.get_state()
    messages: list[tuple[str, float | None]] = []
    fitted = D.DPARGenerator(**TINY).fit(data, schema, SPEND, progress=lambda m, f: messages.append((m, f)))
    np_after = np.random.get_state()
    untouched = (torch.equal(torch_before, torch.get_rng_state()) and np.array_equal(np_before[1], np_after[1])
                 and np_before[2:] == np_after[2:])
    return fitted, messages, untouched


class FakeStatics:
    """Resamples the static codes it was given: a test double for MST (NOT a DP model)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def sample(self, n: int, seed: int) -> pl.DataFrame:
        return self.frame[np.random.default_rng(seed).integers(0, self.frame.height, n).tolist()]


def fake_fit_statics(data: SequenceData, layout: D.SequenceLayout, rho: float, delta: float,
                     progress: Any = None) -> D.StaticFit:
    """MST's stand-in (MST itself is slow to compile; it runs in ``pbc_fit`` and the slow tests)."""
    frame = D.static_code_frame(layout, layout.static_codes(data.statics))
    return D.StaticFit(model=FakeStatics(frame), noisy_entities=300.0, rho=rho, parameters={})


@pytest.fixture(scope="module")
def berka_fit(berka, one_torch_thread):
    """A DP-SGD fit on the Berka slice (statics from a test double of MST)."""
    data, schema = berka
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(D, "fit_statics", fake_fit_statics)
        return D.DPARGenerator(**TINY).fit(data, schema, PrivacySpend(epsilon=2.0, delta=1e-6))


def assert_contract(syn: SequenceData, real: SequenceData, schema: Schema, n: int) -> None:
    """The output contract of ``FittedSequenceGenerator.sample``."""
    spec = schema.seq
    e, o = spec.entity, spec.order
    assert syn.statics.schema == real.statics.schema and syn.events.schema == real.events.schema
    assert syn.n_entities == n
    keys = syn.statics.get_column(e).to_list()
    assert sorted(keys, key=int) == [str(i) for i in range(1, n + 1)] and keys == sorted(keys)
    assert syn.events.get_column(e).unique(maintain_order=True).to_list() == keys
    if n == 0:
        assert syn.events.height == 0
        return
    lengths = syn.lengths()
    assert lengths.min() >= 1 and lengths.max() <= spec.max_events
    order = syn.events.get_column(o)
    assert order.min() >= spec.order_min and order.max() <= spec.order_max
    gaps = syn.gaps().drop_nulls()
    if gaps.len():
        assert gaps.min() >= spec.gap_min and gaps.max() <= spec.gap_max
    # conforming the long table changes nothing: every value in its domain, nothing truncated or clipped
    back, rep = conform_sequences(syn.to_long(), None, schema)
    assert rep.total_changed == 0 and rep.gaps_outside == 0 and rep.truncated_entities == 0
    assert back.events.equals(syn.events) and back.statics.equals(syn.statics)
    for col in schema.columns:
        frame = syn.statics if col.name in spec.static else syn.events
        s = frame.get_column(col.name)
        if not col.nullable:
            assert s.null_count() == 0, col.name
        if col.type == "categorical":
            assert set(s.drop_nulls().unique().to_list()) <= set(col.categories)
        else:
            assert col.min is not None and col.max is not None
            assert s.drop_nulls().min() >= col.min and s.drop_nulls().max() <= col.max  # type: ignore[operator]


# --- the output contract ---------------------------------------------------------------------------


def test_pbcseq_sample_meets_the_output_contract(pbc_fit, pbc):
    data, schema = pbc
    fitted = pbc_fit[0]
    syn = fitted.sample(250, seed=3)
    assert_contract(syn, data, schema, 250)
    # nullable lab columns: missing values are generated (a state of their own), never imputed
    assert syn.events.get_column("chol").null_count() > 0
    assert_contract(fitted.sample(0, seed=1), data, schema, 0)


def test_berka_sample_meets_the_output_contract_with_dates_and_ties(berka_fit, berka):
    data, schema = berka
    syn = berka_fit.sample(120, seed=5)
    assert_contract(syn, data, schema, 120)
    assert syn.events.get_column("operation").null_count() > 0
    assert syn.to_long().get_column("date").str.len_chars().min() == 10  # ISO dates


@pytest.mark.slow
def test_berka_end_to_end_with_mst(berka):
    data, schema = berka
    fitted = D.DPARGenerator(**TINY).fit(data, schema, PrivacySpend(epsilon=2.0, delta=1e-6))
    assert_contract(fitted.sample(150, seed=1), data, schema, 150)
    assert fitted.card.parameters["static_edges"] == [["district_id", "frequency"]]
    assert fitted.card.spend.epsilon <= 2.0


def test_order_stays_in_bounds_when_sequences_run_into_order_max():
    """A tight order range, many events: an untrained (random) model must still meet the contract."""
    schema = Schema.from_dict({
        "kind": "sequential",
        "sequence": {"entity": "id", "order": {"column": "t", "type": "integer", "min": 0, "max": 40,
                                               "gap_min": 1, "gap_max": 30}, "max_events": 50},
        "columns": {"x": {"type": "float", "min": -1, "max": 1, "nullable": True},
                    "k": {"type": "integer", "min": 0, "max": 3}},
    })
    raw = pl.DataFrame({"id": ["a", "a", "b"], "t": ["0", "5", "3"], "x": ["0.5", None, "-1"], "k": ["1", "2", "3"]})
    data, _ = conform_sequences(raw, None, schema)
    layout = D.SequenceLayout.from_schema(schema, 4)
    opts = D.DPAROptions(hidden=16, heads=2, head_hidden=8)
    fitted = D.FittedDPAR(card=None, options=opts, layout=layout, static_model=None,  # type: ignore[arg-type]
                          state=D.build_net(layout, opts, init_seed=3).state_dict(), noisy_rows=2.0)
    syn = fitted.sample(300, seed=2)
    assert_contract(syn, data, schema, 300)
    assert syn.events.get_column("t").max() == 40 or syn.lengths().max() == 50


# --- determinism, pickling -------------------------------------------------------------------------


def test_same_seed_same_sample_other_seed_other_sample_global_rngs_untouched(pbc_fit):
    fitted = pbc_fit[0]
    before = torch.get_rng_state()
    a, b, c = fitted.sample(80, seed=7), fitted.sample(80, seed=7), fitted.sample(80, seed=8)
    assert torch.equal(before, torch.get_rng_state())
    assert a.statics.equals(b.statics) and a.events.equals(b.events)
    assert not a.events.equals(c.events)
    assert pbc_fit[2], "fit must not touch torch's or numpy's global generator"


def test_pickle_round_trip_samples_identically(pbc_fit):
    fitted = pbc_fit[0]
    fitted.sample(5, seed=1)  # builds the cached module, which must not be pickled
    clone = pickle.loads(pickle.dumps(fitted))
    assert clone._model is None
    a, b = clone.sample(60, seed=9), fitted.sample(60, seed=9)
    assert a.statics.equals(b.statics) and a.events.equals(b.events)
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in clone.state.values())


def test_sampling_in_chunks_meets_the_contract(pbc_fit, pbc, monkeypatch):
    monkeypatch.setattr(D, "SAMPLE_POSITIONS", 20 * pbc[1].seq.max_events)  # chunks of 20 entities
    a = pbc_fit[0].sample(50, seed=4)
    assert_contract(a, pbc[0], pbc[1], 50)
    assert a.events.equals(pbc_fit[0].sample(50, seed=4).events)


def test_invalid_sample_arguments(pbc_fit):
    with pytest.raises(InputError):
        pbc_fit[0].sample(-1, seed=1)
    with pytest.raises(InputError):
        pbc_fit[0].sample(3, seed=-1)


# --- card and accounting ---------------------------------------------------------------------------


def history_of(p: dict[str, Any]) -> list[tuple[float, float, int]]:
    return [*[tuple(h) for h in p["fixed_history"]], (p["noise_multiplier"], p["sample_rate"], p["steps"])]


def check_guarantee(p: dict[str, Any], spend: PrivacySpend, card_epsilon: float) -> None:
    """The card charges the fixed-order guarantee, recomputed from what the card records.

    (Was: the card's epsilon equalled ``rdp_epsilon`` of the run's history, i.e. the order optimised
    after MST's noisy count had set the plan, which is not a guarantee of the adaptive mechanism.)
    """
    order = p["rdp_order"]
    budget = rdp_budget(spend.epsilon, spend.delta, order)
    assert p["rdp_budget_at_order"] == budget
    assert card_epsilon == p["epsilon_spent"] == order_epsilon(budget, order, spend.delta)
    assert card_epsilon == pytest.approx(spend.epsilon, rel=1e-12) and card_epsilon <= spend.epsilon  # settles
    assert p["rdp_at_order"] == rdp_at(history_of(p), order)
    assert budget * (1 - 1e-5) <= p["rdp_at_order"] <= budget  # the budget is used, never passed
    assert p["epsilon_optimised_order_info"] == pytest.approx(rdp_epsilon(history_of(p), spend.delta), rel=1e-12)
    assert p["epsilon_optimised_order_info"] <= card_epsilon


def test_card_spend_is_the_accountants_figure_for_mst_plus_dpsgd(pbc_fit, pbc):
    fitted, _, _ = pbc_fit
    card = fitted.card
    p = card.parameters
    assert card.name == "dpar" and p["steps"] == p["planned_steps"] == p["steps_for_epochs"]
    check_guarantee(p, SPEND, card.spend.epsilon)  # calibrated to the budget at the fixed order
    assert "alpha0" in card.accounting and "information only" in card.accounting
    assert card.spend.delta == SPEND.delta and card.spend.rho is None
    # the statics: rho_s = static_share * rho, entered as the Gaussian with the same RDP curve
    assert p["rho_static"] == pytest.approx(0.2 * p["rho_total"])
    assert p["fixed_history"] == [[1 / math.sqrt(2 * p["rho_static"]), 1.0, 1]]
    assert p["static_rho_used"] <= p["rho_static"] * (1 + 1e-9)
    # rho_total alone would spend the whole budget as one Gaussian in the same accountant
    assert rdp_epsilon([D.zcdp_entry(p["rho_total"])], SPEND.delta) == pytest.approx(SPEND.epsilon, rel=1e-3)
    assert p["sample_rate"] == pytest.approx(TINY["batch_size"] / p["noisy_entities"])
    assert p["planned_steps"] == math.ceil(TINY["epochs"] / p["sample_rate"])
    assert p["accountant"] == ACCOUNTANT and "zCDP" in card.accounting and "Poisson" in card.accounting
    assert card.unit_of_privacy == pbc[1].seq.privacy_unit()
    assert "MST" in card.domain_sources["statics"] and "DP" in card.domain_sources["statics"]
    assert {"torch", "opacus", "smartnoise-synth"} <= set(card.library_versions)
    assert "transformer" in p["architecture"]
    # unnoised figures (exact sampled-entity counts, real-batch losses) never reach the released card
    st = fitted.training_stats
    assert st["entities_processed"] > 0 and st["train_seconds"] > 0
    assert not set(st) & set(p)
    assert card.to_dict()["spend"]["epsilon"] == card.spend.epsilon


def test_composition_matches_dp_accounting(pbc_fit):
    """Independent check with Google's dp-accounting (RDP with a zCDP event, and PLD)."""
    dp_accounting = pytest.importorskip("dp_accounting")
    from dp_accounting import dp_event, pld, rdp

    p = pbc_fit[0].card.parameters
    rho, sigma, q, steps, delta = p["rho_static"], p["noise_multiplier"], p["sample_rate"], p["steps"], p["delta"]
    sgd = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps)

    def rdp_eps(first: Any) -> float:
        acc = rdp.RdpAccountant()
        acc.compose(dp_event.ComposedDpEvent([first, sgd]))
        return float(acc.get_epsilon(delta))

    # a rho-zCDP mechanism and the Gaussian with noise multiplier 1/sqrt(2 rho) have the same RDP curve
    as_zcdp = rdp_eps(dp_event.ZCDpEvent(rho))
    as_gauss = rdp_eps(dp_event.GaussianDpEvent(1 / math.sqrt(2 * rho)))
    assert as_zcdp == pytest.approx(as_gauss, rel=1e-9)
    ours = pbc_fit[0].card.spend.epsilon
    assert ours == pytest.approx(as_zcdp, rel=0.03), (ours, as_zcdp)
    # PLD is tighter than any RDP bound: ours may be looser, never tighter
    acc = pld.PLDAccountant(value_discretization_interval=1e-3)
    acc.compose(dp_event.ComposedDpEvent([dp_event.GaussianDpEvent(1 / math.sqrt(2 * rho)), sgd]))
    assert ours >= float(acc.get_epsilon(delta)) * (1 - 1e-3)
    # the guarantee at the fixed order, recomputed by dp-accounting's RDP accountant at that one order
    # (its own subsampled-Gaussian RDP and its conversion, the same Balle et al. / CKS bound)
    at_order = rdp.RdpAccountant(orders=[p["rdp_order"]])
    at_order.compose(dp_event.ComposedDpEvent([dp_event.ZCDpEvent(rho), sgd]))
    assert float(at_order.get_epsilon(delta)) == pytest.approx(ours, rel=1e-3)
    assert dp_accounting is not None


def test_estimated_rows_is_msts_noisy_total(pbc_fit, pbc):
    fitted = pbc_fit[0]
    assert isinstance(fitted.estimated_rows, int)
    assert fitted.estimated_rows == round(fitted.card.parameters["noisy_entities"])
    assert fitted.noisy_rows == fitted.card.parameters["noisy_entities"]
    assert abs(fitted.estimated_rows - pbc[0].n_entities) < 100  # noise of rho_s ~ 0.01 over a few marginals


def test_progress_reports_each_epoch_with_the_running_epsilon(pbc_fit):
    fitted, messages, _ = pbc_fit
    epochs = [m for m, _ in messages if " epoch " in m]
    assert len(epochs) == TINY["epochs"]
    assert float(epochs[-1].rsplit(" ", 1)[1]) == pytest.approx(fitted.card.spend.epsilon, abs=1e-3)


def test_fit_without_static_columns_buys_the_count_with_the_static_share():
    schema, data = _no_static_data()
    fitted = D.DPARGenerator(epochs=1, hidden=8, heads=2, head_hidden=8, batch_size=4).fit(
        data, schema, PrivacySpend(epsilon=1.0, delta=1e-6))
    p = fitted.card.parameters
    assert fitted.static_model is None and "Gaussian" in p["static_model"]
    assert p["count_noise_std"] == pytest.approx(1 / math.sqrt(2 * p["rho_static"]))
    assert fitted.card.spend.epsilon <= 1.0
    assert_contract(fitted.sample(20, seed=1), data, schema, 20)


def _no_static_data() -> tuple[Schema, SequenceData]:
    schema = Schema.from_dict({
        "kind": "sequential",
        "sequence": {"entity": "id", "order": {"column": "t", "type": "integer", "min": 0, "max": 100,
                                               "gap_min": 0, "gap_max": 50, "ties": True}, "max_events": 6},
        "columns": {"c": {"type": "categorical", "categories": ["a", "b", "c"], "nullable": True}},
    })
    rows = [(str(i), str(t), ["a", "b", None][(i + t) % 3]) for i in range(30) for t in range(0, 3 * (i % 4 + 1), 3)]
    raw = pl.DataFrame({"id": [r[0] for r in rows], "t": [r[1] for r in rows], "c": [r[2] for r in rows]})
    return schema, conform_sequences(raw, None, schema)[0]


def test_time_limit_becomes_a_step_count_before_training(pbc, monkeypatch):
    data, schema = pbc
    monkeypatch.setattr(D, "fit_statics", fake_fit_statics)
    fitted = D.DPARGenerator(**{**TINY, "epochs": 2000}, time_limit_s=3.0).fit(data, schema, SPEND)
    p = fitted.card.parameters
    assert p["steps_limited_by_time"] is True and p["probe_seconds_per_step"] > 0
    assert p["steps"] == p["planned_steps"] < p["steps_for_epochs"]
    check_guarantee(p, SPEND, fitted.card.spend.epsilon)  # fewer steps, recalibrated at the same order
    assert any("time limit" in n for n in fitted.card.notes)


def test_plans_over_all_noisy_counts_meet_the_claim(envelope_epsilon, pbc_fit):
    """The guarantee covers the plan whatever MST's noisy total chose (adaptive composition per order).

    At this file's spend (4, 1e-5) with dpar's defaults (30 epochs, batch 64, static share 0.2), the
    per-order envelope of the total RDP over the plans the counts ``ENVELOPE_COUNTS`` (50 .. 50,000
    and extremes) select meets the target; with each plan calibrated at its own optimal order it was
    4.4785 (4.0003 over counts 150 .. 2,000). The order is the same for every count and the fit's."""
    opts = D.DPARGenerator().options
    rho_s = opts.static_share * D.total_rho(SPEND)
    eps, plans = envelope_epsilon(lambda c: D.make_plan(SPEND, opts, c, rho_s), SPEND.delta)
    assert eps <= SPEND.epsilon + 1e-9, eps
    assert {p.order for p in plans} == {Plan.public_order(epsilon=SPEND.epsilon, delta=SPEND.delta, epochs=30,
                                                          fixed_history=[D.zcdp_entry(rho_s)])}
    # the fit's order: the same rule on the fit's epochs, never its count
    p = pbc_fit[0].card.parameters
    assert p["rdp_order"] == Plan.public_order(epsilon=SPEND.epsilon, delta=SPEND.delta, epochs=TINY["epochs"],
                                               fixed_history=[tuple(p["fixed_history"][0])])
    assert {D.make_plan(SPEND, D.DPARGenerator(**TINY).options, c, p["rho_static"]).order
            for c in (100.0, p["noisy_entities"], 5_000.0)} == {p["rdp_order"]}


# --- per-entity clipping ---------------------------------------------------------------------------


def _small(pbc: tuple[SequenceData, Schema], k: int = 6) -> tuple[D.Pretraining, D.LayoutTensors, Any]:
    data, schema = pbc
    opts = D.DPAROptions(hidden=16, layers=1, heads=2, head_hidden=16, sub_bins=4, epochs=1)
    plan = Plan(epsilon=1.0, delta=1e-5, noisy_rows=300.0, batch_size=k, sample_rate=0.1, planned_steps=1,
                noise_multiplier=0.0, max_grad_norm=1e6)
    pre = D.pretraining_state(data, schema, opts, plan=plan, init_seed=11)
    return pre, D.LayoutTensors.make(pre.layout, "cpu"), plan


def _batch(pre: D.Pretraining, idx: np.ndarray) -> tuple[Any, ...]:
    return tuple(torch.from_numpy(a[idx]) for a in (pre.static, pre.codes, pre.fracs, pre.elapsed))


@pytest.mark.parametrize("mode", ["hooks", "ghost", "functorch"])
def test_one_dpsgd_sample_is_one_entity_with_all_its_events(pbc, mode):
    """opacus sees one sample per entity (not per event), and each sample's gradient is exactly the
    gradient of that entity's own loss (its statics and whole sequence), so clipping bounds an entity."""
    pre, lt, plan = _small(pbc)
    idx = np.array([0, 3, 4, 7, 9, 12])  # entities with 2, 12, 12, 10, 5 and 8 events
    lengths = pbc[0].lengths()[idx]
    assert lengths.sum() > 2 * len(idx)
    net = D.build_net(pre.layout, pre.options, init_seed=11)
    module = PrivateModule(net, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0, plan=plan, expected_batch=len(idx),
                           mode=mode, device=torch.device("cpu"))
    loss = D.entity_loss(module, *_batch(pre, idx), lt)
    assert loss.shape == (len(idx),)
    if mode != "ghost":
        loss.sum().backward()
        per_sample = {n: p.grad_sample for n, p in module.plain_module().named_parameters()}
        assert all(g.shape[0] == len(idx) for g in per_sample.values())
        norms = torch.stack([g.reshape(len(idx), -1).norm(dim=1) for g in per_sample.values()]).norm(dim=0)
    else:
        from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

        module.optimizer.zero_grad()
        DPTensorFastGradientClipping(module.module, module.optimizer, loss, "sum").backward()
        norms = module.module.per_sample_gradient_norms
        assert norms.shape == (len(idx),)
    # each sample's gradient (hooks, functorch) or its norm (ghost) is that of the entity's own loss alone
    for i, j in enumerate(idx):
        ref = D.build_net(pre.layout, pre.options, init_seed=11)
        D.entity_loss(ref, *_batch(pre, np.array([j])), lt).sum().backward()
        alone = torch.stack([p.grad.norm() for p in ref.parameters()]).norm()
        assert float(norms[i]) == pytest.approx(float(alone), rel=2e-3), (i, j)
        if mode != "ghost":
            for name, p in ref.named_parameters():
                assert torch.allclose(per_sample[name][i], p.grad, rtol=1e-3, atol=1e-6), (name, i)


def test_entity_losses_are_independent_and_padding_changes_nothing(pbc):
    pre, lt, _ = _small(pbc)
    net = D.build_net(pre.layout, pre.options, init_seed=11)
    idx = np.arange(8)
    s, c, f, e = _batch(pre, idx)
    used = int(((c >= 0).any(dim=2)).sum(dim=1).max())
    full = D.entity_loss(net, s, c, f, e, lt)
    cut = D.entity_loss(net, s, c[:, :used], f[:, :used], e[:, :used], lt)
    assert torch.allclose(full, cut, rtol=1e-5, atol=1e-6)
    # change entity 3's events and statics: only its loss moves
    c2, s2 = c.clone(), s.clone()
    c2[3] = torch.from_numpy(pre.codes[40])
    s2[3] = torch.from_numpy(pre.static[40])
    other = D.entity_loss(net, s2, c2, f, e, lt)
    same = torch.isclose(full, other, rtol=1e-6, atol=1e-7)
    assert not bool(same[3]) and bool(same[torch.arange(8) != 3].all())


def test_an_empty_poisson_sample_is_a_noise_only_step(pbc):
    pre, _, _ = _small(pbc)
    plan = Plan(epsilon=1.0, delta=1e-5, noisy_rows=300.0, batch_size=2, sample_rate=1e-9, planned_steps=2,
                noise_multiplier=1.0, max_grad_norm=1.0, fixed_history=[D.zcdp_entry(0.01)])
    for mode in ("hooks", "ghost"):
        pre_m = D.Pretraining(layout=pre.layout, options=D.DPAROptions(**{**_opts(pre), "grad_sample_mode": mode}),
                              plan=plan, init_seed=7, static=pre.static, codes=pre.codes, fracs=pre.fracs,
                              elapsed=pre.elapsed)
        result = D._train(pre_m, private=True, clock=Clock(None, None))
        assert result.steps == 2 and result.entities == 0
        init = pre_m.initial_state()
        assert any(not torch.equal(init[k], result.state[k]) for k in init)


def _opts(pre: D.Pretraining) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(pre.options)


# --- it learns -------------------------------------------------------------------------------------


def test_training_learns_lengths_start_times_and_a_column(pbc):
    """DP-SGD's code path (Poisson sampling, per-entity clipping) with no noise, against the same
    network untrained: the length field's fit to the real lengths, the first visit's day (always
    day 0 in pbcseq) and the stage marginal of generated events move toward the real ones. Fails
    if training were a no-op."""
    data, schema = pbc
    opts = D.DPAROptions(hidden=32, layers=1, heads=2, head_hidden=32, sub_bins=8, epochs=12, lr=0.01)
    plan = Plan(epsilon=1e6, delta=1e-5, noisy_rows=312.0, batch_size=64, sample_rate=64 / 312, planned_steps=60,
                noise_multiplier=0.0, max_grad_norm=5.0)
    pre = D.pretraining_state(data, schema, opts, plan=plan, init_seed=21)
    trained = D._train(pre, private=True, clock=Clock(None, None))
    lt = D.LayoutTensors.make(pre.layout, "cpu")
    every = np.arange(data.n_entities)

    def net_of(state: dict[str, Any]) -> Any:
        net = D.build_net(pre.layout, opts, init_seed=None)
        net.load_state_dict(state)
        return net.eval()

    def nll(net: Any, name: str) -> float:
        """Mean -log p(real value) of one field over the real entities (teacher forcing, no noise)."""
        static, codes, fracs, elapsed = _batch(pre, every)
        f = pre.layout.index(name)
        with torch.no_grad():
            x, enc = D.model_inputs(static, codes.long(), fracs, elapsed, lt)
            logits = net(x, enc)[f]
        target = codes[:, :, f].long()
        return float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                       ignore_index=-1))

    def first_days(net: Any) -> np.ndarray:
        with torch.no_grad():
            _, orders, _ = D.generate(net, pre.layout, pre.static, torch.Generator().manual_seed(4))
        return orders[:, 0]

    after, before = net_of(trained.state), net_of(pre.initial_state())
    length = [nll(after, "len_bin"), nll(before, "len_bin")]
    stage = [nll(after, "stage"), nll(before, "stage")]
    day0 = [float(np.mean(first_days(after) <= 30)), float(np.mean(first_days(before) <= 30))]
    print({"length NLL": length, "stage NLL": stage, "first visit by day 30": day0})
    # measured: length NLL about 1.8-1.9 vs 2.3, stage NLL about 0.55 vs 1.3, day 0: 100% vs 24%
    assert length[0] < length[1] - 0.25
    assert stage[0] < stage[1] - 0.4
    assert day0[0] > 0.8 and day0[1] < 0.5


# --- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    {"epochs": 0}, {"epochs": 1.5}, {"batch_size": 1}, {"max_grad_norm": 0.0}, {"device": "tpu"},
    {"grad_sample_mode": "fast"}, {"time_limit_s": -1}, {"static_share": 0.0}, {"static_share": 0.5},
    {"static_share": float("nan")}, {"hidden": 3}, {"hidden": 30, "heads": 4}, {"layers": 0}, {"heads": 0},
    {"head_hidden": 0}, {"sub_bins": 0}, {"sub_bins": 1000}, {"lr": 0.0}, {"lr": 1.5}, {"hidden": True},
])
def test_bad_options_are_input_errors(bad):
    with pytest.raises(InputError):
        D.DPARGenerator(**bad)


def test_cuda_is_refused_without_a_gpu_before_anything_is_read():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(InputError, match="cuda"):
        D.DPARGenerator(device="cuda")  # the constructor: before fit is given any data


def test_unknown_option_zero_delta_and_unconformed_data(pbc):
    data, schema = pbc
    with pytest.raises(TypeError):
        D.DPARGenerator(pac=10)  # type: ignore[call-arg]
    with pytest.raises(InputError, match="delta"):
        D.DPARGenerator(epochs=1).fit(data, schema, PrivacySpend(epsilon=1.0, delta=0.0))
    bad = SequenceData(statics=data.statics.drop("sex"), events=data.events, spec=data.spec)
    with pytest.raises(InputError):
        D.DPARGenerator(epochs=1).fit(bad, schema, SPEND)
    # events not grouped in the statics' order would pair one entity's statics with another's events
    shuffled = SequenceData(statics=data.statics.reverse(), events=data.events, spec=data.spec)
    with pytest.raises(InputError, match="grouped"):
        D.DPARGenerator(epochs=1).fit(shuffled, schema, SPEND)


# --- the privacy rule: nothing before the DP steps depends on the data -----------------------------


def _extreme_neighbour(data: SequenceData, schema: Schema) -> SequenceData:
    """Entity 0 replaced by an adversarial one: max_events events at the bounds, huge gaps, extreme
    values in every column, a rare category, missing values where allowed."""
    spec = schema.seq
    e = data.statics.get_column(spec.entity)[0]
    m = spec.max_events
    cols: dict[str, Any] = {spec.entity: [e] * m,
                            spec.order: [min(spec.order_max, spec.order_min + 10_000 * i) for i in range(m)]}
    for col in schema.event_columns:
        if col.type == "categorical":
            cols[col.name] = [None if col.nullable and i % 2 else col.categories[-1] for i in range(m)]
        else:
            hi = int(col.max) if col.type == "integer" else col.max
            cols[col.name] = [None if col.nullable and i % 3 == 0 else hi for i in range(m)]
    ev = pl.DataFrame(cols, schema=data.events.schema)
    events = pl.concat([ev, data.events.filter(pl.col(spec.entity) != e)])
    statics = data.statics.with_columns(
        *[pl.when(pl.col(spec.entity) == e).then(pl.lit(c.categories[-1] if c.type == "categorical" else c.max)
                                                 .cast(data.statics.schema[c.name])).otherwise(pl.col(c.name))
          .alias(c.name) for c in schema.static_columns])
    return SequenceData(statics=statics, events=events, spec=data.spec)


def test_pretraining_state_depends_on_the_data_only_through_each_entity(pbc):
    data, schema = pbc
    other = _extreme_neighbour(data, schema)
    assert other.lengths()[0] == schema.seq.max_events and not other.events.equals(data.events)
    opts = D.DPAROptions(**TINY)
    plan = Plan(epsilon=4.0, delta=1e-5, noisy_rows=300.0, batch_size=64, sample_rate=0.21, planned_steps=10,
                noise_multiplier=1.3, max_grad_norm=1.0, fixed_history=[D.zcdp_entry(0.01)])
    a = D.pretraining_state(data, schema, opts, plan=plan, init_seed=5)
    b = D.pretraining_state(other, schema, opts, plan=plan, init_seed=5)
    assert a.layout.describe() == b.layout.describe() == D.SequenceLayout.from_schema(schema, opts.sub_bins).describe()
    assert a.plan == b.plan and a.options == b.options
    sa, sb = a.initial_state(), b.initial_state()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], v) for k, v in D.pretraining_state(
        data, schema, opts, plan=plan, init_seed=6).initial_state().items())
    # the encoded entities differ in entity 0 only; the padded length is the public max_events
    assert a.codes.shape == b.codes.shape == (data.n_entities, schema.seq.max_events, len(a.layout.fields))
    differs = ((a.codes != b.codes).any(axis=(1, 2)) | (a.fracs != b.fracs).any(axis=(1, 2))
               | (a.elapsed != b.elapsed).any(axis=1) | (a.static != b.static).any(axis=1))
    assert differs[0] and not differs[1:].any()
    # the adversarial entity's huge gaps are clipped to the public gap bound, not widened
    gap = a.layout.grids["__gap__"]
    assert gap.highs[-1] == schema.seq.gap_max and b.codes[0, 1, b.layout.index("gap_bin")] == gap.bins - 1


def test_fit_reads_the_data_before_dpsgd_only_through_mst(pbc, monkeypatch):
    """fit's pre-processing: the statics' MST (rho_s) gives the count; the plan comes from it alone."""
    data, schema = pbc
    other = _extreme_neighbour(data, schema)
    calls: list[tuple[int, float]] = []
    plans: list[Plan] = []
    made: list[tuple] = []

    def fake_statics(d, layout, rho, delta, progress=None):
        calls.append((d.n_entities, rho))
        return D.StaticFit(model=None, noisy_entities=305.0, rho=rho, parameters={})

    def fake_plan(spend, options, noisy, static_rho, steps=None):
        made.append((spend, options, noisy, static_rho, steps))
        return Plan(epsilon=spend.epsilon, delta=spend.delta, noisy_rows=noisy, batch_size=64, sample_rate=0.2,
                    planned_steps=3, noise_multiplier=50.0, max_grad_norm=1.0, fixed_history=[D.zcdp_entry(static_rho)],
                    order=8.0)

    def fake_train(pre, *, private, clock):
        plans.append(pre.plan)
        return D.TrainResult(state=pre.initial_state(), steps=pre.plan.planned_steps, entities=0, seconds=1.0,
                             last_loss=float("nan"))

    monkeypatch.setattr(D, "fit_statics", fake_statics)
    monkeypatch.setattr(D, "_train", fake_train)
    monkeypatch.setattr(D, "make_plan", fake_plan)
    gen = D.DPARGenerator(**TINY, static_share=0.1)
    fits = [gen.fit(d, schema, SPEND) for d in (data, other)]
    rho = D.total_rho(SPEND)
    assert calls == [(312, pytest.approx(0.1 * rho))] * 2
    # the plan's inputs: the spend, the options, MST's noisy count and rho_s, nothing else
    assert made == [(SPEND, gen.options, 305.0, pytest.approx(0.1 * rho), None)] * 2
    assert plans[0] == plans[1] and plans[0].noisy_rows == 305.0
    assert plans[0].fixed_history == [D.zcdp_entry(0.1 * rho)]
    assert all(f.estimated_rows == 305 for f in fits)


def test_static_table_codes_come_from_the_schema(berka):
    data, schema = berka
    layout = D.SequenceLayout.from_schema(schema, 8)
    code_schema = D.static_code_schema(layout)
    assert [c.name for c in code_schema.columns] == ["district_id", "frequency"]
    assert [len(c.categories) for c in code_schema.columns] == [77, 3]
    codes = layout.static_codes(data.statics)
    assert codes.shape == (150, 2) and codes.max(axis=0).tolist() < [77, 3]
    # an entity with a category of its own in the data cannot add a code: conform maps or refuses it
    weird = data.statics.with_columns(pl.lit("99").alias("district_id"))
    with pytest.raises(InputError):
        layout.static_codes(weird)


# --- the public grids ------------------------------------------------------------------------------


def test_time_grids_cover_the_public_bounds_contiguously(pbc, berka):
    for schema in (pbc[1], berka[1]):
        spec = schema.seq
        lay = D.SequenceLayout.from_schema(schema, 16)
        for key, lo, hi in (("__start__", spec.order_min, spec.order_max), ("__gap__", spec.gap_min, spec.gap_max)):
            g = lay.grids[key]
            assert g.integer and g.lows[0] == lo and g.highs[-1] == hi
            assert all(b == a + 1 for a, b in zip(g.highs[:-1], g.lows[1:]))
        gap = lay.grids["__gap__"]
        widths = np.asarray(gap.highs) - np.asarray(gap.lows) + 1
        assert widths[0] == 1 and widths[-1] > widths[0]  # log-spaced: short gaps exact


@pytest.mark.parametrize("key", ["__start__", "__gap__", "bili", "platelet", "chol"])
def test_grid_decoding_inverts_encoding(pbc, key):
    lay = D.SequenceLayout.from_schema(pbc[1], 16)
    g = lay.grids[key]
    rng = np.random.default_rng(0)
    if g.integer:
        values = np.arange(g.lo, g.hi + 1, max(1, int((g.hi - g.lo) // 3000)), dtype=np.float64)
    else:
        values = rng.uniform(g.lo, g.hi, 3000)
    b, s, frac = g.encode(values)
    assert ((frac >= 0) & (frac <= 1)).all()
    back = g.decode(b, s, rng.random(values.size))
    b2, s2, _ = g.encode(back)
    assert (b2 == b).all() and (s2 == s).all()  # a decoded value lands in the same bin and sub-bin
    if g.integer and g.sub == int(max(np.asarray(g.highs) - np.asarray(g.lows) + 1)):
        assert np.array_equal(back, values)  # bins no wider than the sub-bins: exact integers
    if g.nullable:
        bm, sm, fm = g.encode(np.array([np.nan]))
        assert bm[0] == g.bins and sm[0] == -1 and np.isnan(g.decode(bm, np.zeros(1), np.zeros(1))[0])


# --- the non-private twin --------------------------------------------------------------------------


def test_nonprivate_twin_says_so():
    schema, data = _no_static_data()
    fitted = D.fit_nonprivate(data, schema, epochs=2, batch_size=8, hidden=8, heads=2, head_hidden=8)
    p = fitted.card.parameters
    assert "NOT differentially private" in fitted.card.accounting and p["differentially_private"] is False
    assert p["steps"] == 2 * 4 and fitted.training_stats["entities_processed"] == 60
    assert fitted.estimated_rows == 30
    assert_contract(fitted.sample(10, seed=2), data, schema, 10)
