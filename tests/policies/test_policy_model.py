"""The Policy model: the bundled profiles load, and the membership settings are validated."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from policies import load_policy
from policies.model import MembershipSettings, Policy


@pytest.mark.parametrize("name", ["default", "health", "finance"])
def test_bundled_profiles_carry_both_membership_profiles(name):
    p = load_policy(name)
    assert set(p.audit.membership) == {"fast", "thorough"}
    fast, thorough = p.audit.membership["fast"], p.audit.membership["thorough"]
    # fast: no shadow-model game (minutes of refitting); thorough: the game with several targets
    assert fast.game_targets == 0 and thorough.game_targets >= 10
    assert thorough.one_run_canaries >= fast.one_run_canaries > 0
    # regulated profiles require the thorough audit and tighter attack thresholds
    if name != "default":
        assert p.audit.membership_required == "thorough"
        assert p.thresholds.domias_auc_max <= 0.55 and p.thresholds.epsilon_lb_warn_fraction == 0.5


def _settings(**kw):
    base = dict(domias_candidates=100, bootstrap=100, one_run_canaries=100, one_run_guesses=10, game_targets=4,
                game_isolated_targets=2, game_train_fits=3, game_test_fits=2, game_reference_rows=100)
    return MembershipSettings(**{**base, **kw})


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"game_isolated_targets": 5}, "must not exceed game_targets"),
        ({"game_train_fits": 1}, "game_train_fits >= 2"),
        ({"one_run_guesses": 60}, "half of one_run_canaries"),
        ({"bootstrap": 10}, "greater than or equal to 50"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_membership_settings_are_refused(kw, needle):
    with pytest.raises(ValidationError, match=needle):
        _settings(**kw)


def test_a_policy_without_the_thorough_profile_is_refused():
    data = load_policy("default").model_dump()
    del data["audit"]["membership"]["thorough"]
    with pytest.raises(ValidationError, match="missing: thorough"):
        Policy.model_validate(data)


def test_unknown_profile_name_is_refused():
    data = load_policy("default").model_dump()
    data["audit"]["membership_required"] = "paranoid"
    with pytest.raises(ValidationError):
        Policy.model_validate(yaml.safe_load(yaml.safe_dump(data)))


@pytest.mark.parametrize("name", ["default", "health", "finance"])
def test_profiles_recommend_an_allowed_generator_by_table_shape(name):
    p = load_policy(name)
    assert {"dpctgan", "dpdiffusion", "patectgan"} <= set(p.allowed_generators)
    assert p.recommended_generator(0.2) in p.allowed_generators
    assert p.recommended_generator(0.9) == p.recommended_generators["mostly_continuous"]


def test_recommendation_must_be_allowed_and_present():
    data = load_policy("finance").model_dump()
    data["recommended_generators"] = {"mostly_continuous": "dpgan"}
    with pytest.raises(ValidationError, match="does not allow"):
        Policy.model_validate(data)
    data["recommended_generators"] = {"mostly_continuous": "dpdiffusion"}
    p = Policy.model_validate(data)
    assert p.recommended_generator(0.51) == "dpdiffusion"
    with pytest.raises(ValueError, match="recommends no generator for mostly categorical tables"):
        p.recommended_generator(0.5)
