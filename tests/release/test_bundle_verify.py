"""Release bundles: writing, and verification of every byte, signature and recorded check."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy.errors import InputError, IntegrityError
from release import bundle
from release.approval_sig import sign_decision
from release.bundle import (
    APPROVAL_BOUND_FILES,
    MANIFEST_NAME,
    RELEASE_PREDICATE_TYPE,
    manifest_bytes,
    tar_path_for,
    write_bundle,
)
from release.canonical import canonical_json, sha256_hex
from release.dsse import IN_TOTO_PAYLOAD_TYPE, make_statement, sign_envelope
from release.keys import generate_keypair, key_id, load_private_key, public_key_pem
from release.verify import load_trusted, verify_bundle


def fixed_key(label: str) -> Ed25519PrivateKey:
    """A deterministic key, so that every run of these tests signs the same bytes."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


RELEASE = fixed_key("release")
OTHER_RELEASE = fixed_key("other-release")
ALICE = fixed_key("alice")
BOB = fixed_key("bob")
MALLORY = fixed_key("mallory")
STEWARDS = {"alice": ALICE, "bob": BOB}
RUN_ID = "run-20250601-7f3a"
TRUSTED = [RELEASE.public_key()]


def sample_files() -> dict[str, bytes]:
    """The six files of a release, small but shaped like the real ones."""
    return {
        "synthetic.parquet": b"PAR1" + bytes(range(256)) * 4 + b"PAR1",
        "synthetic.csv": b"age,workclass,income\n39,State-gov,<=50K\n50,Self-emp-not-inc,>50K\n",
        "report.html": b"<!doctype html><title>synthgate report</title><p>utility: ok</p>\n",
        "audit.json": b'{"membership_inference_auc":0.52,"tvd_1way":0.04}\n',
        "privacy-statement.md": "# Privacy statement\n\nε = 1.0, δ = 1e-6 per person.\n".encode(),
        "datasheet.md": b"# Datasheet\n\nSynthetic sample of the Adult census extract.\n",
    }


def make_predicate(
    files: dict[str, bytes],
    *,
    release: Ed25519PrivateKey = RELEASE,
    stewards: dict[str, Ed25519PrivateKey] | None = None,
    signers: dict[str, Ed25519PrivateKey] | None = None,
    run_id: str = RUN_ID,
    approval_run_id: str | None = None,
    required: int = 2,
) -> dict[str, Any]:
    """A realistic release predicate; ``signers`` (name -> key) sign approvals, default the stewards."""
    stewards = STEWARDS if stewards is None else stewards
    policy = {
        "name": "public-release",
        "digest": sha256_hex(b"name: public-release\n"),
        "approvals_required": required,
    }
    gate = {
        "passed": True,
        "checks": [
            {"name": "membership_inference_auc", "value": 0.52, "threshold": 0.6, "goal": "minimize", "passed": True},
            {"name": "tvd_1way", "value": 0.04, "threshold": 0.1, "goal": "minimize", "passed": True},
        ],
    }
    schema = {"name": "adult", "digest": sha256_hex(b"adult_schema.yaml")}
    generator = {"name": "mst", "package": "smartnoise-synth", "version": "1.0.8", "seed": 7}
    spend = {"epsilon": 1.0, "delta": 1e-6, "rho": None, "accountant": "basic composition"}
    # as in release.runs: what the stewards sign carries the policy, gate, spend, generator, schema
    approval_statement = {
        "run_id": run_id,
        "files": {name: sha256_hex(files[name]) for name in APPROVAL_BOUND_FILES},
        "spend": spend,
        "policy": policy,
        "gate": gate,
        "generator": generator,
        "schema": schema,
        "requester": "carol",
    }
    digest = sha256_hex(canonical_json(approval_statement))
    approvals = [
        sign_decision(
            key,
            run_id=approval_run_id or run_id,
            statement_digest=digest,
            decision="approve",
            steward=name,
            comment=f"audits reviewed by {name}",
        )
        for name, key in (stewards if signers is None else signers).items()
    ]
    return {
        "run_id": run_id,
        "source": {"fingerprint": sha256_hex(b"adult_2000.csv"), "rows": 2000, "columns": 15},
        "schema": copy.deepcopy(schema),
        "generator": copy.deepcopy(generator),
        "spend": copy.deepcopy(spend),
        "policy": copy.deepcopy(policy),
        "gate": copy.deepcopy(gate),
        "stewards": {
            name: {"public_key_pem": public_key_pem(key.public_key()), "keyid": key_id(key.public_key())}
            for name, key in stewards.items()
        },
        "approvals": approvals,
        "approval_statement": approval_statement,
        "approval_statement_digest": digest,
        "release_keyid": key_id(release.public_key()),
    }


def build(
    tmp_path: Path,
    *,
    files: dict[str, bytes] | None = None,
    predicate: dict[str, Any] | None = None,
    key: Ed25519PrivateKey = RELEASE,
    name: str = "bundle",
    tar: bool = False,
) -> Path:
    files = sample_files() if files is None else files
    predicate = make_predicate(files, release=key) if predicate is None else predicate
    return write_bundle(tmp_path / name, files, predicate, key, tar=tar)


# --- the good path ----------------------------------------------------------------------------


def test_verify_passes(tmp_path: Path) -> None:
    out = build(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == sorted([*sample_files(), MANIFEST_NAME])
    result = verify_bundle(out, TRUSTED)
    assert result.release_keyid == key_id(RELEASE.public_key())
    assert result.files == tuple(sorted(sample_files()))
    assert result.statement["predicateType"] == RELEASE_PREDICATE_TYPE
    assert result.predicate["run_id"] == RUN_ID
    assert [(a["steward"], a["decision"], a["keyid"]) for a in result.approvals] == [
        ("alice", "approve", key_id(ALICE.public_key())),
        ("bob", "approve", key_id(BOB.public_key())),
    ]
    assert result.approvals[0]["comment"] == "audits reviewed by alice"
    for name, data in sample_files().items():
        assert (out / name).read_bytes() == data


def test_manifest_is_a_dsse_envelope_of_an_in_toto_statement(tmp_path: Path) -> None:
    out = build(tmp_path)
    envelope = json.loads((out / MANIFEST_NAME).read_text())
    assert envelope["payloadType"] == IN_TOTO_PAYLOAD_TYPE
    statement = verify_bundle(out, TRUSTED).statement
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [
        {"name": name, "digest": {"sha256": sha256_hex(data)}}
        for name, data in sorted(sample_files().items())
    ]


def test_verify_with_keys_loaded_from_disk(tmp_path: Path) -> None:
    private_path, public_path = generate_keypair(tmp_path / "keys", "release")
    key = load_private_key(private_path)
    out = build(tmp_path, key=key)
    assert verify_bundle(out, load_trusted([tmp_path / "keys"])).release_keyid == key_id(key.public_key())
    assert verify_bundle(out, load_trusted([public_path])).release_keyid == key_id(key.public_key())


# --- every byte is checked --------------------------------------------------------------------


def _flip(path: Path, position: int) -> bytes:
    original = path.read_bytes()
    data = bytearray(original)
    data[position] ^= 0x01
    path.write_bytes(bytes(data))
    return original


@pytest.mark.parametrize("name", [*sample_files(), MANIFEST_NAME])
def test_changing_one_byte_of_any_file_fails(tmp_path: Path, name: str) -> None:
    out = build(tmp_path)
    path = out / name
    size = path.stat().st_size
    for position in sorted({0, size // 3, size // 2, size - 1}):
        original = _flip(path, position)
        with pytest.raises(
            IntegrityError, match=r"SHA-256 does not match|manifest\.json|signature|base64|DSSE|payload"
        ):
            verify_bundle(out, TRUSTED)
        path.write_bytes(original)
    verify_bundle(out, TRUSTED)


def test_changing_any_byte_of_the_manifest_fails(tmp_path: Path) -> None:
    # Every byte outside the payload (whitespace, field names, the unauthenticated keyid, the
    # signature) and a sample of the payload's Base64, which the signature covers as a whole.
    out = build(tmp_path)
    path = out / MANIFEST_NAME
    text = path.read_bytes()
    payload = json.loads(text)["payload"].encode()
    start = text.index(payload)
    payload_positions = range(start, start + len(payload))
    positions = [p for p in range(len(text)) if p not in payload_positions or (p - start) % 97 == 0]
    assert len(positions) > 300
    for position in positions:
        original = _flip(path, position)
        with pytest.raises(IntegrityError, match="manifest|signature|base64|DSSE|payload"):
            verify_bundle(out, TRUSTED)
        path.write_bytes(original)


def test_reformatted_manifest_fails(tmp_path: Path) -> None:
    out = build(tmp_path)
    envelope = json.loads((out / MANIFEST_NAME).read_text())
    (out / MANIFEST_NAME).write_text(json.dumps(envelope, indent=4))
    with pytest.raises(IntegrityError, match="not in the exact form synthgate writes"):
        verify_bundle(out, TRUSTED)
    envelope["note"] = "unsigned extra field"
    (out / MANIFEST_NAME).write_text(json.dumps(envelope, indent=2) + "\n")
    with pytest.raises(IntegrityError, match="not in the exact form synthgate writes"):
        verify_bundle(out, TRUSTED)


def test_duplicate_json_keys_fail(tmp_path: Path) -> None:
    out = build(tmp_path)
    text = (out / MANIFEST_NAME).read_text()
    (out / MANIFEST_NAME).write_text(text.replace('"payload":', '"payload": "", "payload":', 1))
    with pytest.raises(IntegrityError, match="duplicate key 'payload'"):
        verify_bundle(out, TRUSTED)


def test_added_file_fails(tmp_path: Path) -> None:
    out = build(tmp_path)
    (out / "notes.txt").write_text("not released")
    with pytest.raises(IntegrityError, match=r"file\(s\) not in the manifest: notes.txt"):
        verify_bundle(out, TRUSTED)


@pytest.mark.parametrize("name", [*sample_files(), MANIFEST_NAME])
def test_removed_file_fails(tmp_path: Path, name: str) -> None:
    out = build(tmp_path)
    (out / name).unlink()
    reason = "manifest.json is missing" if name == MANIFEST_NAME else rf"missing: {name}"
    with pytest.raises(IntegrityError, match=reason):
        verify_bundle(out, TRUSTED)


def test_folder_or_symlink_in_bundle_fails(tmp_path: Path) -> None:
    out = build(tmp_path)
    (out / "extra").mkdir()
    with pytest.raises(IntegrityError, match="'extra' in the bundle is not a regular file"):
        verify_bundle(out, TRUSTED)
    (out / "extra").rmdir()
    outside = tmp_path / "outside.csv"
    outside.write_bytes(sample_files()["synthetic.csv"])
    (out / "synthetic.csv").unlink()
    (out / "synthetic.csv").symlink_to(outside)
    with pytest.raises(IntegrityError, match="'synthetic.csv' in the bundle is not a regular file"):
        verify_bundle(out, TRUSTED)


# --- keys and re-signing ----------------------------------------------------------------------


def test_untrusted_release_key_fails(tmp_path: Path) -> None:
    out = build(tmp_path, key=OTHER_RELEASE)
    with pytest.raises(IntegrityError, match="no signature verifies with a trusted key"):
        verify_bundle(out, TRUSTED)


def test_release_keyid_in_predicate_must_be_the_signer(tmp_path: Path) -> None:
    files = sample_files()
    predicate = make_predicate(files, release=OTHER_RELEASE)
    out = build(tmp_path, files=files, predicate=predicate)
    with pytest.raises(IntegrityError, match="release_keyid is not the key that signed"):
        verify_bundle(out, TRUSTED)


@pytest.mark.parametrize("resigner", [RELEASE, OTHER_RELEASE], ids=["same-release-key", "other-trusted-key"])
def test_swapped_data_with_resigned_manifest_fails(tmp_path: Path, resigner: Ed25519PrivateKey) -> None:
    # The release key (or another trusted one) re-signs a manifest over different data but keeps
    # the stewards' approvals: step 6 catches it because the approvals bind the data's digests.
    files = sample_files()
    predicate = make_predicate(files, release=resigner)
    swapped = dict(files, **{"synthetic.parquet": b"PAR1 entirely different rows PAR1"})
    out = build(tmp_path, files=swapped, predicate=predicate, key=resigner)
    with pytest.raises(
        IntegrityError, match="synthetic.parquet: the shipped file is not the one the stewards approved"
    ):
        verify_bundle(out, [RELEASE.public_key(), OTHER_RELEASE.public_key()])


def test_swapped_data_with_edited_approval_statement_fails(tmp_path: Path) -> None:
    # Editing the approval statement to the new digests breaks its link to the signed approvals.
    files = sample_files()
    predicate = make_predicate(files)
    swapped = dict(files, **{"synthetic.parquet": b"PAR1 entirely different rows PAR1"})
    predicate["approval_statement"]["files"]["synthetic.parquet"] = sha256_hex(swapped["synthetic.parquet"])
    out = build(tmp_path, files=swapped, predicate=predicate)
    with pytest.raises(IntegrityError, match="approval_statement_digest is not the digest"):
        verify_bundle(out, TRUSTED)
    # ... and recomputing that digest leaves approvals that signed the old one.
    predicate["approval_statement_digest"] = sha256_hex(canonical_json(predicate["approval_statement"]))
    out = build(tmp_path, files=swapped, predicate=predicate, name="bundle2")
    with pytest.raises(
        IntegrityError, match="approval of 'alice' signs another approval statement|signature"
    ):
        verify_bundle(out, TRUSTED)


# --- approvals --------------------------------------------------------------------------------


def test_approval_by_key_not_of_the_steward_fails(tmp_path: Path) -> None:
    files = sample_files()
    predicate = make_predicate(files, signers={"alice": MALLORY, "bob": BOB})
    out = build(tmp_path, files=files, predicate=predicate)
    with pytest.raises(IntegrityError, match="approval of 'alice': keyid .* is not the steward's key"):
        verify_bundle(out, TRUSTED)
    # Relabelling the keyid to alice's does not help: the signature is mallory's.
    predicate["approvals"][0]["keyid"] = key_id(ALICE.public_key())
    out = build(tmp_path, files=files, predicate=predicate, name="bundle2")
    with pytest.raises(IntegrityError, match="approval of 'alice': signature does not verify"):
        verify_bundle(out, TRUSTED)


def test_approval_by_unlisted_steward_fails(tmp_path: Path) -> None:
    files = sample_files()
    predicate = make_predicate(files, signers={"alice": ALICE, "mallory": MALLORY})
    out = build(tmp_path, files=files, predicate=predicate)
    with pytest.raises(IntegrityError, match="approval by 'mallory': not a steward recorded in the manifest"):
        verify_bundle(out, TRUSTED)


def test_approval_from_another_run_fails(tmp_path: Path) -> None:
    files = sample_files()
    predicate = make_predicate(files, approval_run_id="run-20250101-0000")
    out = build(tmp_path, files=files, predicate=predicate)
    with pytest.raises(IntegrityError, match="approval of 'alice' is for run 'run-20250101-0000'"):
        verify_bundle(out, TRUSTED)


def test_too_few_approvals_fail(tmp_path: Path) -> None:
    files = sample_files()
    predicate = make_predicate(files, signers={"alice": ALICE})
    out = build(tmp_path, files=files, predicate=predicate)
    with pytest.raises(IntegrityError, match=r"1 distinct steward approval\(s\); the policy requires 2"):
        verify_bundle(out, TRUSTED)


def test_same_steward_twice_counts_once(tmp_path: Path) -> None:
    files = sample_files()
    predicate = make_predicate(files, signers={"alice": ALICE})
    predicate["approvals"] = predicate["approvals"] * 2
    out = build(tmp_path, files=files, predicate=predicate)
    with pytest.raises(IntegrityError, match=r"1 distinct steward approval\(s\)"):
        verify_bundle(out, TRUSTED)


def test_one_key_under_two_steward_names_counts_once(tmp_path: Path) -> None:
    files = sample_files()
    predicate = make_predicate(files, stewards={"alice": ALICE, "alice2": ALICE})
    out = build(tmp_path, files=files, predicate=predicate)
    with pytest.raises(IntegrityError, match=r"1 distinct steward approval\(s\)"):
        verify_bundle(out, TRUSTED)


def test_rejections_do_not_count(tmp_path: Path) -> None:
    files = sample_files()
    predicate = make_predicate(files)
    predicate["approvals"][1] = sign_decision(
        BOB,
        run_id=RUN_ID,
        statement_digest=predicate["approval_statement_digest"],
        decision="reject",
        steward="bob",
        comment="re-identification risk",
    )
    out = build(tmp_path, files=files, predicate=predicate)
    with pytest.raises(IntegrityError, match=r"1 distinct steward approval\(s\)"):
        verify_bundle(out, TRUSTED)


def test_rejections_are_returned_but_do_not_block_a_met_threshold(tmp_path: Path) -> None:
    # A threshold policy (here 1 of 2) may be met despite a rejection; the gate and the workflow
    # decide what a rejection means, the verifier reports it.
    files = sample_files()
    predicate = make_predicate(files, required=1)
    predicate["approvals"][1] = sign_decision(
        BOB,
        run_id=RUN_ID,
        statement_digest=predicate["approval_statement_digest"],
        decision="reject",
        steward="bob",
        comment="re-identification risk",
    )
    result = verify_bundle(build(tmp_path, files=files, predicate=predicate), TRUSTED)
    assert [(a["steward"], a["decision"]) for a in result.approvals] == [
        ("alice", "approve"),
        ("bob", "reject"),
    ]


def test_zero_approvals_required_is_refused(tmp_path: Path) -> None:
    files = sample_files()
    out = build(tmp_path, files=files, predicate=make_predicate(files, required=0))
    with pytest.raises(IntegrityError, match="approvals_required must be an integer >= 1"):
        verify_bundle(out, TRUSTED)


def test_steward_keyid_must_match_pem(tmp_path: Path) -> None:
    files = sample_files()
    predicate = make_predicate(files)
    predicate["stewards"]["bob"]["keyid"] = key_id(MALLORY.public_key())
    out = build(tmp_path, files=files, predicate=predicate)
    with pytest.raises(IntegrityError, match="steward 'bob': keyid does not match the public key"):
        verify_bundle(out, TRUSTED)


def test_skipping_steward_checks_warns(tmp_path: Path) -> None:
    files = sample_files()
    out = build(tmp_path, files=files, predicate=make_predicate(files, signers={"alice": MALLORY}))
    with pytest.warns(UserWarning, match="approval signatures are NOT checked"):
        result = verify_bundle(out, TRUSTED, steward_keys_check=False)
    assert result.approvals == ()


# --- gate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda g: g["checks"][1].__setitem__("passed", False), "gate check 'tvd_1way' did not pass"),
        (
            lambda g: g["checks"][0].__setitem__("passed", "yes"),
            "gate check 'membership_inference_auc' did not",
        ),
        (lambda g: g.__setitem__("passed", False), "the gate did not pass"),
        (lambda g: g.__setitem__("checks", []), "gate record has no checks"),
    ],
)
def test_failed_gate_fails(tmp_path: Path, edit: Callable[[dict[str, Any]], None], reason: str) -> None:
    files = sample_files()
    predicate = make_predicate(files)
    edit(predicate["gate"])
    out = build(tmp_path, files=files, predicate=predicate)
    # with approvals checked, the edit is caught as a predicate that differs from what was signed
    with pytest.raises(IntegrityError, match="predicate gate differs from the approved statement"):
        verify_bundle(out, TRUSTED)
    # step 7 on its own (approvals skipped) refuses the failed gate too
    with pytest.warns(UserWarning, match="NOT checked"), pytest.raises(IntegrityError, match=reason):
        verify_bundle(out, TRUSTED, steward_keys_check=False)


def test_requester_approving_own_run_fails_when_policy_forbids(tmp_path: Path) -> None:
    files = sample_files()
    predicate = make_predicate(files)
    predicate["policy"]["requester_may_approve"] = False
    predicate["approval_statement"]["policy"]["requester_may_approve"] = False
    predicate["approval_statement"]["requester"] = "alice"
    digest = sha256_hex(canonical_json(predicate["approval_statement"]))
    predicate["approval_statement_digest"] = digest
    predicate["approvals"] = [
        sign_decision(STEWARDS[n], run_id=RUN_ID, statement_digest=digest, decision="approve", steward=n, comment="")
        for n in STEWARDS
    ]
    out = build(tmp_path, files=files, predicate=predicate)
    with pytest.raises(IntegrityError, match="requester 'alice' approved their own run"):
        verify_bundle(out, TRUSTED)


def test_wrong_predicate_type_fails(tmp_path: Path) -> None:
    out = build(tmp_path)
    statement = verify_bundle(out, TRUSTED).statement
    statement["predicateType"] = "https://slsa.dev/provenance/v1"
    envelope = sign_envelope(canonical_json(statement), IN_TOTO_PAYLOAD_TYPE, RELEASE)
    (out / MANIFEST_NAME).write_bytes(manifest_bytes(envelope))
    with pytest.raises(IntegrityError, match="predicateType 'https://slsa.dev/provenance/v1' is not"):
        verify_bundle(out, TRUSTED)


def test_subject_outside_the_bundle_fails(tmp_path: Path) -> None:
    out = build(tmp_path)
    statement = make_statement(
        [("../secret", sha256_hex(b""))],
        RELEASE_PREDICATE_TYPE,
        {"release_keyid": key_id(RELEASE.public_key())},
    )
    envelope = sign_envelope(canonical_json(statement), IN_TOTO_PAYLOAD_TYPE, RELEASE)
    (out / MANIFEST_NAME).write_bytes(manifest_bytes(envelope))
    with pytest.raises(IntegrityError, match="statement subject: file name '../secret'"):
        verify_bundle(out, TRUSTED)


# --- archives ---------------------------------------------------------------------------------


def test_tar_round_trip(tmp_path: Path) -> None:
    out = build(tmp_path, tar=True)
    archive = tar_path_for(out)
    assert archive == tmp_path / "bundle.tar.gz"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names == ["bundle", *sorted(f"bundle/{n}" for n in [*sample_files(), MANIFEST_NAME])]
    assert verify_bundle(archive, TRUSTED).files == verify_bundle(out, TRUSTED).files
    # Reproducible: the same bundle gives the same archive bytes.
    (tmp_path / "again").mkdir()
    files = sample_files()
    predicate = json.loads(json.dumps(verify_bundle(out, TRUSTED).predicate))
    again = write_bundle(tmp_path / "again" / "bundle", files, predicate, RELEASE, tar=True)
    assert tar_path_for(again).read_bytes() == archive.read_bytes()


def test_tampered_tar_content_fails(tmp_path: Path) -> None:
    out = build(tmp_path)
    (out / "synthetic.csv").write_bytes(b"age\n1\n")
    archive = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(out, arcname="bundle")
    with pytest.raises(IntegrityError, match="synthetic.csv: SHA-256 does not match"):
        verify_bundle(archive, TRUSTED)


def _evil_tar(tmp_path: Path, add: Callable[[tarfile.TarFile], None]) -> Path:
    """A valid bundle archive plus whatever ``add`` puts in."""
    out = build(tmp_path)
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(out, arcname="bundle")
        add(tar)
    return archive


def _file_member(name: str, data: bytes = b"x") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


def _special_member(name: str, kind: bytes, linkname: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)

    return add


@pytest.mark.parametrize(
    ("add", "reason"),
    [
        (_file_member("bundle/../evil"), "escapes the bundle folder"),
        (_file_member("../evil"), "escapes the bundle folder"),
        (_file_member("/tmp/evil"), "has an absolute path"),
        (_special_member("bundle/link", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
        (_special_member("bundle/hard", tarfile.LNKTYPE, "bundle/synthetic.csv"), "is a link"),
        (_special_member("bundle/dev", tarfile.CHRTYPE), "is a device, fifo or other special file"),
        (_special_member("bundle/fifo", tarfile.FIFOTYPE), "is a device, fifo or other special file"),
        (_file_member("second/file"), "more than one top-level entry"),
        (_file_member("bundle/sub/file"), "a bundle has no sub-folders"),
        (_file_member("bundle/synthetic.csv"), "appears twice"),
    ],
    ids=[
        "dotdot-inside",
        "dotdot",
        "absolute",
        "symlink",
        "hardlink",
        "device",
        "fifo",
        "two-tops",
        "nested",
        "dup",
    ],
)
def test_unsafe_tar_members_fail(tmp_path: Path, add: Callable[[tarfile.TarFile], None], reason: str) -> None:
    archive = _evil_tar(tmp_path, add)
    with pytest.raises(IntegrityError, match=reason):
        verify_bundle(archive, TRUSTED)
    assert not (tmp_path / "evil").exists()


def test_file_at_tar_top_level_fails(tmp_path: Path) -> None:
    archive = tmp_path / "flat.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _file_member("manifest.json", b"{}")(tar)
    with pytest.raises(IntegrityError, match="is not inside the bundle folder"):
        verify_bundle(archive, TRUSTED)


def test_not_an_archive_fails(tmp_path: Path) -> None:
    fake = tmp_path / "fake.tar.gz"
    fake.write_bytes(b"not gzip at all")
    with pytest.raises(IntegrityError, match="not a readable .tar.gz bundle"):
        verify_bundle(fake, TRUSTED)
    other = tmp_path / "bundle.zip"
    other.write_bytes(b"PK")
    with pytest.raises(IntegrityError, match="not a bundle folder or a .tar.gz archive"):
        verify_bundle(other, TRUSTED)
    with pytest.raises(InputError, match="nope: file not found"):
        verify_bundle(tmp_path / "nope", TRUSTED)


# --- writing ----------------------------------------------------------------------------------


def test_write_into_non_empty_dir_is_refused_and_leaves_it_unchanged(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="exists and is not empty"):
        build(tmp_path)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_write_into_empty_dir_is_fine(tmp_path: Path) -> None:
    (tmp_path / "bundle").mkdir()
    verify_bundle(build(tmp_path), TRUSTED)


def test_existing_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bundle.tar.gz").write_bytes(b"old")
    with pytest.raises(InputError, match="bundle.tar.gz: already exists"):
        build(tmp_path, tar=True)
    assert (tmp_path / "bundle.tar.gz").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.tar.gz"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("manifest.json", "reserved for the manifest"),
        ("Manifest.JSON", "reserved for the manifest"),
        ("data/synthetic.csv", "must be a flat name"),
        ("/etc/passwd", "must be a flat name"),
        ("..", "must not contain '..'"),
        ("a..b", "must not contain '..'"),
        (".hidden", "starting with a letter or digit"),
        ("with space.csv", "letters, digits"),
    ],
)
def test_bad_file_names_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    files = dict(sample_files(), **{name: b"x"})
    with pytest.raises(InputError, match=reason):
        write_bundle(tmp_path / "bundle", files, make_predicate(sample_files()), RELEASE)
    assert list(tmp_path.iterdir()) == []


def test_names_differing_only_in_case_are_refused(tmp_path: Path) -> None:
    files = dict(sample_files(), **{"Synthetic.csv": b"x"})
    with pytest.raises(InputError, match="differ only in case"):
        write_bundle(tmp_path / "bundle", files, make_predicate(sample_files()), RELEASE)


def test_predicate_with_nan_is_refused_before_writing(tmp_path: Path) -> None:
    files = sample_files()
    predicate = make_predicate(files)
    predicate["spend"]["epsilon"] = float("nan")
    with pytest.raises(InputError, match="the predicate is not canonical JSON"):
        write_bundle(tmp_path / "bundle", files, predicate, RELEASE)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("tar", [False, True])
def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tar: bool) -> None:
    calls = {"n": 0}
    real_write = bundle._write_new_file

    def failing_write(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(bundle, "_write_new_file", failing_write)
    with pytest.raises(OSError, match="No space left on device"):
        build(tmp_path, tar=tar)
    assert list(tmp_path.iterdir()) == []


def test_failure_publishing_archive_removes_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_link = os.link

    def racing_link(src: Any, dst: Any) -> None:
        Path(dst).write_bytes(b"someone else's archive")
        real_link(src, dst)

    monkeypatch.setattr(bundle.os, "link", racing_link)
    with pytest.raises(InputError, match="bundle.tar.gz: already exists"):
        build(tmp_path, tar=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.tar.gz"]
    assert (tmp_path / "bundle.tar.gz").read_bytes() == b"someone else's archive"


# --- trusted keys -----------------------------------------------------------------------------


def test_load_trusted(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "keys", "release")
    generate_keypair(tmp_path / "keys", "backup")
    keys = load_trusted([tmp_path / "keys", tmp_path / "keys" / "release.pub"])
    assert len(keys) == 2  # the repeated key is kept once
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no trusted public keys \(\*.pub\) found"):
        load_trusted([tmp_path / "empty"])
    with pytest.raises(InputError, match="missing.pub: file not found"):
        load_trusted([tmp_path / "missing.pub"])
    with pytest.raises(InputError, match="not an Ed25519 public key"):
        load_trusted([tmp_path / "keys" / "release.key"])


def test_verify_needs_a_trusted_key(tmp_path: Path) -> None:
    out = build(tmp_path)
    with pytest.raises(InputError, match="no trusted release keys given"):
        verify_bundle(out, [])
