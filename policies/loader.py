"""Loading policies by bundled name or path."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from policies.model import Policy
from privacy.errors import PolicyError
from privacy.strict_yaml import YamlError, load_yaml


def available_policies() -> list[str]:
    """Names of the profiles shipped in ``policies/profiles``."""
    folder = resources.files("policies") / "profiles"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_text(name_or_path: str) -> tuple[str, str]:
    if name_or_path in available_policies():
        return name_or_path, (resources.files("policies") / "profiles" / f"{name_or_path}.yaml").read_text("utf-8")
    p = Path(name_or_path)
    if p.is_file():
        try:
            return str(p), p.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"cannot read policy file {p}") from exc
    raise PolicyError(
        f"unknown policy {name_or_path!r}: not a bundled profile ({', '.join(available_policies())}) nor a file"
    )


def parse_policy(text: str, origin: str = "policy") -> Policy:
    """Validate policy text (YAML or JSON); one line naming the first problem."""
    try:
        raw = load_yaml(text)
    except YamlError as exc:
        raise PolicyError(f"{origin}: not valid YAML/JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{origin}: a policy must be a mapping")
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise PolicyError(f"{origin}: invalid policy at {loc}: {msg}") from exc


def load_policy(name_or_path: str) -> Policy:
    """Load a bundled profile by name, or a policy file by path."""
    origin, text = _read_text(name_or_path)
    return parse_policy(text, origin)


def policy_text(name_or_path: str) -> str:
    """The policy file's text, comments included (what ``policy show`` prints)."""
    return _read_text(name_or_path)[1]


def policy_digest(policy: Policy) -> str:
    """SHA-256 of the policy's canonical JSON: what a bundle records to name the policy exactly."""
    canon = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()
