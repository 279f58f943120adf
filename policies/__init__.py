"""The rules a release must meet: the Policy model, its loader and the bundled profiles."""

from policies.loader import available_policies, load_policy, policy_digest
from policies.model import Policy

__all__ = ["Policy", "available_policies", "load_policy", "policy_digest"]
