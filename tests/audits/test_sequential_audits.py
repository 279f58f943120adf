"""The sequence audits on real sequences: pbcseq (312 patients, nullable lab values) and the Berka slice
(150 accounts, dates with ties, nullable categories).

Each data set is split by entity into train, holdout and a third real part, ``fresh``, that poses as
the synthetic data of a perfect generator (real entities neither set has seen). Against it stand a
copy of the training entities (the leakiest generator), the training entities with their event
values shuffled across all events (right marginals, no sequence structure), and entities drawn
uniformly from the schema's domains (a generator that learnt nothing).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from seq_refitters import (
    IgnoringSequenceRefitter,
    SequenceCopyRefitter,
    noisy_copy,
    random_sequences,
    resample_entities,
)

from audits.context import AuditContext, Claim
from audits.result import AuditResult, Metric
from audits.sequential import membership
from audits.sequential.distance import DistanceSpace, nearest, pair_distance
from audits.sequential.features import (
    MISSING,
    encode,
    entity_features,
    entity_table,
    joint_states,
    view_schema,
)
from audits.sequential.fidelity import column_similarity, run_sequence_fidelity, transition_tv
from audits.sequential.game import run_sequence_game, run_sequence_one_run
from audits.sequential.membership import run_sequence_membership
from audits.sequential.suite import SEQUENCE_AUDITS, run_sequence_audits
from audits.sequential.utility import run_sequence_utility
from audits.suite import audit_document, gate_checks, gate_passed
from policies.model import MembershipSettings, Policy
from privacy.errors import InputError
from privacy.schema import Schema
from privacy.sequences import SequenceData, conform_sequences, split_entities
from privacy.table import conform, read_raw

DATA = Path(__file__).resolve().parents[1] / "data"

GAME = MembershipSettings(
    domias_candidates=200, bootstrap=100, one_run_canaries=400, one_run_guesses=40,
    game_targets=10, game_isolated_targets=3, game_train_fits=6, game_test_fits=10,
    game_reference_rows=150, workers=1,
)


@dataclass(frozen=True)
class Case:
    schema: Schema
    train: SequenceData
    holdout: SequenceData
    fresh: SequenceData

    def copy(self) -> SequenceData:
        return resample_entities(self.train, self.train.n_entities, 0)

    def shuffled(self) -> SequenceData:
        """Training entities (statics, lengths, times) with every event column permuted across all events."""
        rng = np.random.default_rng(5)
        ev = self.train.events
        perm = rng.permutation(ev.height)
        cols = [ev.get_column(c.name).gather(perm) for c in self.schema.event_columns]
        return SequenceData(statics=self.train.statics, events=ev.with_columns(cols), spec=self.train.spec)

    def garbage(self) -> SequenceData:
        return random_sequences(self.schema, self.train.n_entities, 9)


def _case(schema_file: str, events: str, statics: str | None) -> Case:
    schema = Schema.load(DATA / schema_file)
    data, _ = conform_sequences(read_raw(DATA / events), None if statics is None else read_raw(DATA / statics), schema)
    rest, holdout = split_entities(data, 0.3, 0)
    train, fresh = split_entities(rest, 0.4, 1)
    return Case(schema=schema, train=train, holdout=holdout, fresh=fresh)


@pytest.fixture(scope="module")
def pbc() -> Case:
    return _case("pbcseq_schema.yaml", "pbcseq.csv", None)


@pytest.fixture(scope="module")
def berka() -> Case:
    return _case("berka_schema.yaml", "berka_transactions.csv", "berka_accounts.csv")


@pytest.fixture(params=["pbc", "berka"])
def case(request: pytest.FixtureRequest) -> Case:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def seq_policy(make_policy) -> Policy:  # type: ignore[no-untyped-def]
    return make_policy()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def game_policy(seq_policy: Policy) -> Policy:
    audit = seq_policy.audit.model_copy(update={"membership": {"fast": GAME, "thorough": GAME}})
    return seq_policy.model_copy(update={"audit": audit})


def _metric(result: AuditResult, name: str) -> Metric:
    return next(m for m in result.metrics if m.name == name)


# -- features and distance -------------------------------------------------------------------------


def test_features_line_up_and_come_from_the_schema(pbc: Case):
    real = entity_features(encode(pbc.train, pbc.schema), pbc.schema)
    other = entity_features(encode(pbc.garbage(), pbc.schema), pbc.schema)
    assert real.names == other.names and real.matrix.shape == (pbc.train.n_entities, len(real.names))
    # the tabular view conforms to its own schema, derived from the sequence schema alone
    table = entity_table(encode(pbc.train, pbc.schema), pbc.schema)
    conformed, report = conform(table, view_schema(pbc.schema))
    assert conformed.height == pbc.train.n_entities and report.total_changed == 0
    # features of a target can be left out for the utility model
    assert not any(s == "status" for s in real.without({"status"}).sources)


def test_sequence_distance_is_exact_and_zero_only_for_copies(pbc: Case):
    enc = encode(pbc.holdout, pbc.schema)
    space = DistanceSpace.from_schema(pbc.schema)
    assert pair_distance(space, enc, 3, enc, 3) == 0.0
    assert pair_distance(space, enc, 3, enc, 7) == pytest.approx(pair_distance(space, enc, 7, enc, 3))
    # branch and bound finds the same neighbours as brute force
    nb = nearest(space, enc, enc, k=3, exclude_self=True)
    for q in range(0, enc.n, 11):
        brute = np.sort([pair_distance(space, enc, q, enc, r) for r in range(enc.n) if r != q])[:3]
        np.testing.assert_allclose(nb.distances[q], brute)
    # one event's value changed: a small positive distance; one event dropped: at least the length penalty
    one = pbc.holdout.take(np.arange(pbc.holdout.n_entities) == 0)
    changed = SequenceData(statics=one.statics, events=one.events.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.col("bili") + 1.0).otherwise(pl.col("bili")).alias("bili")),
        spec=one.spec)
    shorter = SequenceData(statics=one.statics, events=one.events.head(one.events.height - 1), spec=one.spec)
    e_one, e_changed, e_short = (encode(x, pbc.schema) for x in (one, changed, shorter))
    d_changed = pair_distance(space, e_one, 0, e_changed, 0)
    assert 0 < d_changed < 0.1
    assert pair_distance(space, e_one, 0, e_short, 0) >= space.sequence_weight / one.events.height - 1e-12


# -- privacy ------------------------------------------------------------------------------------------


def test_copy_fails_dcr_and_exact_match(case: Case, seq_policy: Policy):
    copy = run_sequence_membership(case.train, case.holdout, case.copy(), case.schema, seq_policy)
    assert _metric(copy, "dcr_share").passed is False
    exact = _metric(copy, "exact_match_train_minus_holdout")
    assert exact.passed is False and exact.value > 0.3
    fresh = run_sequence_membership(case.train, case.holdout, case.fresh, case.schema, seq_policy)
    assert _metric(fresh, "exact_match_train_minus_holdout").value <= 0
    assert _metric(fresh, "dcr_share").value < _metric(copy, "dcr_share").value


def test_dcr_of_unseen_real_entities_is_near_one_half(pbc: Case, seq_policy: Policy):
    r = run_sequence_membership(pbc.train, pbc.holdout, pbc.fresh, pbc.schema, seq_policy)
    m = _metric(r, "dcr_share")
    assert 0.35 < m.value < 0.65 and m.passed is True and m.gated_on == "lower"
    assert m.interval is not None and m.interval[0] < m.value < m.interval[1]
    variants = m.details["variants"]
    assert len(variants) == 1 + seq_policy.audit.dcr_subsets
    # simultaneous over the column sets: a critical value above the single-interval 1.96, every column set's
    # interval share +- c se, and the reported one spans the largest lower and upper ends
    c = m.details["critical_value"]
    assert 1.96 < c < 3.0
    for v in variants:
        assert v["interval"][0] == pytest.approx(max(0.0, v["share"] - c * v["se"]), abs=1e-5)
    assert m.interval[0] == pytest.approx(max(v["interval"][0] for v in variants), abs=1e-6)
    assert m.details["nearest_real_entities"]["effective_entities"] <= m.details["synthetic_entities_used"]


def test_dcr_replicates_read_truncated_neighbour_lists_exactly(pbc: Case, monkeypatch: pytest.MonkeyPatch):
    """The replicates read each side's nearest entity from the NEIGHBOURS nearest of each side: every
    replicate's share equals the one from whole lists (the full synthetic x real distance matrix)."""
    train = pbc.train.take(np.arange(pbc.train.n_entities) < pbc.holdout.n_entities)
    e_syn, e_train, e_hold = (encode(x, pbc.schema) for x in (pbc.garbage(), train, pbc.holdout))
    n, k = e_train.n, membership.NEIGHBOURS
    assert n > 2 * k
    space = DistanceSpace.from_schema(pbc.schema, ["bili", "edema", "sex"])
    short = membership.pooled_neighbours(space, e_syn, e_train, e_hold)
    monkeypatch.setattr(membership, "NEIGHBOURS", n)
    full = membership.pooled_neighbours(space, e_syn, e_train, e_hold)
    assert short[0].shape[1] == 2 * k and full[0].shape[1] == 2 * n
    on_train = membership.random_assignments(n, 300, np.random.default_rng(0))
    assert (on_train.sum(axis=1) == n).all()
    np.testing.assert_array_equal(membership.permuted_shares([short], on_train),
                                  membership.permuted_shares([full], on_train))
    # the observed assignment gives the share of the nearest training against the nearest holdout entity
    d_t = nearest(space, e_syn, e_train).distances[:, 0]
    d_h = nearest(space, e_syn, e_hold).distances[:, 0]
    expected = np.where(np.abs(d_t - d_h) <= 1e-9, 0.5, (d_t < d_h).astype(float)).mean()
    observed = (np.arange(2 * n) < n)[None, :]
    assert membership.permuted_shares([short], observed)[0, 0] == pytest.approx(expected)


def test_dcr_gate_passes_chance_and_fails_copies_over_splits(pbc: Case, seq_policy: Policy):
    """Over several splits of pbcseq, generators whose output does not depend on the training entities
    (random sequences; a resample of real entities neither side has seen) pass the DCR gate although their
    point share is often above the threshold, while copies and noisy copies (no exact match: only the DCR
    share can catch them) all fail; and the standard error follows the share's real spread around 0.5,
    which the binomial one (0.5 / sqrt(m)) understates."""
    data, _ = conform_sequences(read_raw(DATA / "pbcseq.csv"), None, pbc.schema)
    chance: list[Metric] = []
    leaky: list[Metric] = []
    for seed in range(6):
        train, holdout = split_entities(data, 0.3, seed)
        rest, fresh = split_entities(train, 0.4, 100 + seed)
        for real, syn in ((train, random_sequences(pbc.schema, train.n_entities, seed)),
                          (rest, resample_entities(fresh, rest.n_entities + 1, seed))):
            chance.append(_metric(run_sequence_membership(real, holdout, syn, pbc.schema, seq_policy), "dcr_share"))
        leaky.append(_metric(run_sequence_membership(train, holdout, resample_entities(train, train.n_entities, seed),
                                                     pbc.schema, seq_policy), "dcr_share"))
        noisy = run_sequence_membership(train, holdout, noisy_copy(train, pbc.schema, seed), pbc.schema, seq_policy)
        assert _metric(noisy, "exact_match_train_minus_holdout").passed
        leaky.append(_metric(noisy, "dcr_share"))
    threshold = seq_policy.thresholds.dcr_share_max
    assert all(m.passed for m in chance), [(m.value, m.interval) for m in chance]
    # the old rule (point value against the threshold) fails several of these
    assert sum(m.value > threshold for m in chance) >= 3
    assert not any(m.passed for m in leaky), [(m.value, m.interval) for m in leaky]
    assert all(m.interval is not None and m.interval[0] > threshold for m in leaky)
    # calibration: all-columns share's spread around its true value 0.5 against the reported standard error
    shares = np.array([m.details["variants"][0]["share"] for m in chance])
    se = np.array([m.details["variants"][0]["se"] for m in chance])
    binomial = np.array([0.5 / math.sqrt(m.details["synthetic_entities_used"]) for m in chance])
    spread = math.sqrt(float(np.mean((shares - 0.5) ** 2)))
    assert spread > 1.2 * binomial.mean()
    assert 0.8 * spread < se.mean() < 1.5 * spread


def test_game_catches_a_copying_generator(pbc: Case, game_policy: Policy):
    ctx = AuditContext(claim=Claim(epsilon=0.5, delta=1e-9), refitter=SequenceCopyRefitter())  # type: ignore[arg-type]
    r = run_sequence_game(pbc.train, pbc.holdout, pbc.fresh, pbc.schema, game_policy, ctx)
    auc, lb, dp = (_metric(r, n) for n in ("game_auc", "game_epsilon_lb", "game_auc_dp_check"))
    assert auc.value > 0.9 and auc.passed is False
    assert lb.value > 0.5 and lb.passed is False and lb.kind == "dp_claim"
    assert dp.passed is False
    per_target = _metric(r, "game_worst_target_auc").details["per_target"]
    assert len(per_target) == 10 and sum(t["kind"] == "isolated" for t in per_target) == 3
    assert auc.details["unit"] == "entity"


def test_game_passes_a_generator_that_ignores_its_data(pbc: Case, game_policy: Policy):
    ctx = AuditContext(claim=Claim(epsilon=1.0, delta=1e-9),
                       refitter=IgnoringSequenceRefitter(public=pbc.fresh))  # type: ignore[arg-type]
    r = run_sequence_game(pbc.train, pbc.holdout, pbc.fresh, pbc.schema, game_policy, ctx)
    assert _metric(r, "game_epsilon_lb").passed is True
    assert _metric(r, "game_auc_dp_check").passed is True
    assert 0.3 < _metric(r, "game_auc").value < 0.7


def test_one_run_catches_a_copy_and_passes_an_ignoring_generator(pbc: Case, game_policy: Policy):
    leaky = AuditContext(claim=Claim(epsilon=1.0, delta=1e-9), refitter=SequenceCopyRefitter())  # type: ignore[arg-type]
    m = _metric(run_sequence_one_run(pbc.train, pbc.holdout, pbc.fresh, pbc.schema, game_policy, leaky),
                "one_run_epsilon_lb")
    assert m.kind == "dp_claim" and m.passed is False and m.value > 1.0
    blind = AuditContext(claim=Claim(epsilon=1.0, delta=1e-9),
                         refitter=IgnoringSequenceRefitter(public=pbc.fresh))  # type: ignore[arg-type]
    m = _metric(run_sequence_one_run(pbc.train, pbc.holdout, pbc.fresh, pbc.schema, game_policy, blind),
                "one_run_epsilon_lb")
    assert m.passed is True and m.value < 1.0


def test_refitting_audits_are_skipped_with_a_note(pbc: Case, seq_policy: Policy, game_policy: Policy):
    for audit in (run_sequence_game, run_sequence_one_run):
        r = audit(pbc.train, pbc.holdout, pbc.fresh, pbc.schema, game_policy, AuditContext())
        assert r.metrics == () and "no generator" in r.notes[0]
    # the fast profile of the bundled policies plays no game
    r = run_sequence_game(pbc.train, pbc.holdout, pbc.fresh, pbc.schema, seq_policy,
                          AuditContext(refitter=SequenceCopyRefitter()))  # type: ignore[arg-type]
    assert r.metrics == () and "no targets" in r.notes[0]


def test_game_in_worker_processes_gives_the_same_figures(berka: Case, game_policy: Policy):
    small = GAME.model_copy(update={"game_targets": 4, "game_isolated_targets": 1, "game_train_fits": 2,
                                    "game_test_fits": 2, "workers": 2})
    ctx = AuditContext(claim=Claim(epsilon=1.0, delta=1e-9), refitter=SequenceCopyRefitter())  # type: ignore[arg-type]

    def with_settings(s: MembershipSettings) -> Policy:
        return game_policy.model_copy(update={"audit": game_policy.audit.model_copy(
            update={"membership": {"fast": s, "thorough": s}})})

    r1 = run_sequence_game(berka.train, berka.holdout, berka.fresh, berka.schema, with_settings(small), ctx)
    r2 = run_sequence_game(berka.train, berka.holdout, berka.fresh, berka.schema,
                           with_settings(small.model_copy(update={"workers": 1})), ctx)
    assert [m.to_dict() for m in r1.metrics] == [m.to_dict() for m in r2.metrics]
    json.dumps(r1.to_dict(), allow_nan=False)


# -- fidelity -----------------------------------------------------------------------------------------


def test_fidelity_scores_are_ordered(case: Case, seq_policy: Policy):
    def run(syn: SequenceData) -> AuditResult:
        return run_sequence_fidelity(case.train, case.holdout, syn, case.schema, seq_policy)

    fresh, shuffled, garbage = run(case.fresh), run(case.shuffled()), run(case.garbage())
    q = {k: _metric(r, "sequence_quality_score") for k, r in
         (("fresh", fresh), ("shuffled", shuffled), ("garbage", garbage))}
    assert q["fresh"].passed is True and q["garbage"].passed is False
    assert q["fresh"].value > q["shuffled"].value > q["garbage"].value
    assert q["fresh"].value - q["garbage"].value > 0.2
    # per-column marginals: shuffling keeps them, random values do not
    assert _metric(shuffled, "event_column_shapes").value == pytest.approx(1.0)
    assert _metric(garbage, "event_column_shapes").value < _metric(fresh, "event_column_shapes").value - 0.2
    assert _metric(garbage, "length_similarity").value < _metric(fresh, "length_similarity").value
    assert _metric(fresh, "sequence_validity").value == 1.0


def test_discriminator_tells_shuffled_events_but_not_copies(pbc: Case, seq_policy: Policy):
    def auc(syn: SequenceData) -> Metric:
        return _metric(run_sequence_fidelity(pbc.train, pbc.holdout, syn, pbc.schema, seq_policy), "discriminator_auc")

    copy, shuffled = auc(pbc.copy()), auc(pbc.shuffled())
    assert copy.interval is not None and shuffled.interval is not None
    # a copy of real entities looks real; independent events do not
    assert abs(copy.value - 0.5) < 0.12 and copy.interval[0] < 0.5 < copy.interval[1]
    assert shuffled.value > 0.85 and shuffled.interval[0] > 0.75
    assert copy.role == "info" and copy.details["entities_per_side"] > 50


def test_transition_tv_is_zero_for_identical_data(case: Case, seq_policy: Policy):
    enc = encode(case.train, case.schema)
    codes, k = joint_states(enc, case.schema)
    assert transition_tv(codes, codes, k, enc, enc) == 0.0
    copy = run_sequence_fidelity(case.train, case.holdout, case.copy(), case.schema, seq_policy)
    assert _metric(copy, "transition_similarity").value == pytest.approx(1.0)
    assert _metric(copy, "autocorrelation_similarity").value == pytest.approx(1.0)
    shuffled = run_sequence_fidelity(case.train, case.holdout, case.shuffled(), case.schema, seq_policy)
    assert _metric(shuffled, "transition_similarity").value < 0.9


# -- utility ------------------------------------------------------------------------------------------


def test_utility_ratio_near_one_for_real_data_and_low_for_garbage(pbc: Case, seq_policy: Policy):
    def run(syn: SequenceData) -> AuditResult:
        return run_sequence_utility(pbc.train, pbc.holdout, syn, pbc.schema, seq_policy, AuditContext(target="status"))

    copy, fresh, garbage = run(pbc.copy()), run(pbc.fresh), run(pbc.garbage())
    for name in ("utility_auc_ratio", "next_event_auc_ratio"):
        assert _metric(copy, name).value == pytest.approx(1.0)
        m = _metric(fresh, name)
        assert 0.85 < m.value < 1.2 and m.passed is True and m.interval is not None
        g = _metric(garbage, name)
        assert g.value < 0.75 and g.passed is False
    assert _metric(fresh, "utility_auc_ratio").details["target"] == "status"


def test_utility_target_must_be_static_and_categorical(pbc: Case, seq_policy: Policy):
    with pytest.raises(InputError, match="categorical"):
        run_sequence_utility(pbc.train, pbc.holdout, pbc.fresh, pbc.schema, seq_policy, AuditContext(target="age"))
    with pytest.raises(InputError, match="static"):
        run_sequence_utility(pbc.train, pbc.holdout, pbc.fresh, pbc.schema, seq_policy, AuditContext(target="stage"))


# -- missing values -------------------------------------------------------------------------------------


def test_missing_values_are_a_state_of_their_own(pbc: Case, seq_policy: Policy):
    col = pbc.schema.column("chol")
    no_chol = SequenceData(statics=pbc.fresh.statics, spec=pbc.fresh.spec,
                           events=pbc.fresh.events.with_columns(pl.lit(None, dtype=pl.Float64).alias("chol")))
    real = encode(pbc.train, pbc.schema)
    j = [c.name for c in pbc.schema.event_columns].index("chol")
    fresh_score = column_similarity(real.events[:, j], encode(pbc.fresh, pbc.schema).events[:, j], col)
    none_score = column_similarity(real.events[:, j], encode(no_chol, pbc.schema).events[:, j], col)
    assert none_score < fresh_score - 0.3
    enc = encode(no_chol, pbc.schema)
    feats = entity_features(enc, pbc.schema)
    assert np.isnan(feats.matrix[:, feats.names.index("chol:mean")]).all()
    assert (feats.matrix[:, feats.names.index("chol:missing")] == 1.0).all()
    assert set(entity_table(enc, pbc.schema).get_column("chol:mean").to_list()) == {MISSING}
    # the whole suite runs on it and reports the column
    r = run_sequence_fidelity(pbc.train, pbc.holdout, no_chol, pbc.schema, seq_policy)
    assert _metric(r, "event_column_shapes").details["columns"]["chol"] < 0.7


# -- the suite and the gate -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def berka_copy_results(berka: Case, seq_policy: Policy) -> tuple[list[AuditResult], list[str]]:
    seen: list[str] = []
    results = run_sequence_audits(berka.train, berka.holdout, berka.copy(), berka.schema, seq_policy,
                                  AuditContext(claim=Claim(epsilon=1.0, delta=1e-9)), progress=seen.append)
    return results, seen


def test_suite_runs_every_audit_in_order_and_the_gate_reads_it(berka_copy_results, berka: Case):  # type: ignore[no-untyped-def]
    results, seen = berka_copy_results
    assert seen == [name for name, _ in SEQUENCE_AUDITS]
    assert [r.audit for r in results] == ["protocol", *seen]
    assert all(r.seconds >= 0 for r in results) and sum(r.seconds for r in results) > 0
    doc = audit_document(results, {"schema": berka.schema.name, "unit": "entity"})
    json.dumps(doc, allow_nan=False)
    assert doc["gate"]["passed"] is False and gate_passed(results) is False
    failed = {c["name"] for c in doc["gate"]["checks"] if not c["passed"]}
    assert {"dcr_share", "exact_match_train_minus_holdout"} <= failed
    gated = {c["name"] for c in gate_checks(results)}
    assert {"membership_profile", "sequence_quality_score", "sequence_validity", "next_event_auc_ratio",
            "utility_auc_ratio", "singling_out_multivariate", "linkability", "inference"} <= gated
    # every metric says what it measures, and every threshold comes from the policy
    assert all(m.meaning for r in results for m in r.metrics)


def test_suite_passes_unseen_real_entities_on_the_privacy_checks(pbc: Case, seq_policy: Policy):
    results = run_sequence_audits(pbc.train, pbc.holdout, pbc.fresh, pbc.schema, seq_policy,
                                  AuditContext(target="status"))
    checks = {c["name"]: c for c in gate_checks(results)}
    for name in ("dcr_share", "exact_match_train_minus_holdout", "sequence_quality_score", "sequence_validity",
                 "utility_auc_ratio", "next_event_auc_ratio"):
        assert checks[name]["passed"], name


def test_empty_or_tiny_synthetic_sets(berka: Case, seq_policy: Policy):
    with pytest.raises(InputError, match="no entities"):
        run_sequence_audits(berka.train, berka.holdout, berka.train.take(np.zeros(berka.train.n_entities, bool)),
                            berka.schema, seq_policy)
    tiny = resample_entities(berka.fresh, 3, 0)
    results = run_sequence_audits(berka.train, berka.holdout, tiny, berka.schema, seq_policy)
    doc = audit_document(results, {})
    json.dumps(doc, allow_nan=False)
    assert doc["gate"]["passed"] is False
    by_name = {m.name: m for r in results for m in r.metrics}
    for name in ("sequence_quality_score", "utility_auc_ratio", "next_event_auc_ratio"):
        assert math.isnan(by_name[name].value) and by_name[name].passed is False, name


def test_bad_inputs_are_input_errors(pbc: Case, seq_policy: Policy):
    tabular = Schema.load(DATA / "adult_schema.yaml")
    with pytest.raises(InputError, match="sequential schema"):
        run_sequence_audits(pbc.train, pbc.holdout, pbc.fresh, tabular, seq_policy)
    broken = SequenceData(statics=pbc.fresh.statics, events=pbc.fresh.events.drop("bili"), spec=pbc.fresh.spec)
    with pytest.raises(InputError, match="bili"):
        run_sequence_audits(pbc.train, pbc.holdout, broken, pbc.schema, seq_policy)
    with pytest.raises(InputError, match="profile"):
        run_sequence_audits(pbc.train, pbc.holdout, pbc.fresh, pbc.schema, seq_policy, AuditContext(profile="quick"))
    with pytest.raises(InputError, match="sensitive"):
        from audits.sequential.anonymeter import run_sequence_anonymeter
        run_sequence_anonymeter(pbc.train, pbc.holdout, pbc.fresh, pbc.schema,
                                seq_policy.model_copy(update={"sensitive_columns": ["nope"]}))


# -- the whole Berka data ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_whole_berka_runs_in_minutes():
    import time

    from policies import load_policy

    root = Path(__file__).resolve().parents[2] / "bench" / "data" / "berka"
    schema = Schema.load(root / "schema.yaml")
    data, _ = conform_sequences(read_raw(root / "transactions.csv"), read_raw(root / "accounts.csv"), schema)
    rest, holdout = split_entities(data, 0.3, 0)
    train, fresh = split_entities(rest, 0.4, 1)
    started = time.perf_counter()
    results = run_sequence_audits(train, holdout, fresh, schema, load_policy("default"))
    assert time.perf_counter() - started < 180
    # unseen real accounts posing as synthetic data pass the default policy's gate
    assert gate_passed(results), [c for c in gate_checks(results) if not c["passed"]]
