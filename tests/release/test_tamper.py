"""Tamper tests that count: every change an attacker can make to a bundle folder must be refused.

One bundle is built per module (``release.bundle.write_bundle`` with the release predicate of
``test_bundle_verify``, approvals by two stewards, and files shaped like a real release: a Parquet
and a CSV of synthetic rows, an audit.json, the two documents, and a report.html of about 3 MB, the
size it has once it inlines plotly.js). Then, case by case, the bundle is changed in place, handed
to ``release.verify.verify_bundle`` (a plain call, no subprocess) and restored:

* every single-byte change: files up to 64 KiB at every position (XOR 0x01, and for text files
  also a look-alike byte: another whitespace, the other letter case, another digit); larger
  files at every position of their first and last 4 KiB and at every ``BIG_FILE_STRIDE``-th
  position in between (XOR 0x01);
* every file removed, renamed (new name, other case, hidden, two files swapped), a file added at
  the top level or in a sub-folder, every file replaced by a symlink to an identical copy;
* the statement re-signed with an untrusted key, and approvals swapped in from another run or
  made with an unregistered key (the manifest then re-signed with the *trusted* release key, so
  only the approval checks stand between the forgery and acceptance).

A case is caught only if ``IntegrityError`` (exit code 5) is raised; no exception, or any other
exception, counts as missed. Each category prints one line of counts (shown under plain
``pytest``) and the counts go to ``test-artifacts/tamper-counts.json``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_bundle_verify import ALICE, BOB, MALLORY, RELEASE, RUN_ID, TRUSTED, fixed_key, make_predicate

from privacy.errors import IntegrityError
from release.approval_sig import sign_decision
from release.atomic import write_atomic
from release.bundle import MANIFEST_NAME, manifest_bytes, write_bundle
from release.canonical import canonical_json, sha256_hex
from release.dsse import IN_TOTO_PAYLOAD_TYPE, sign_envelope
from release.keys import key_id, public_key_pem
from release.verify import verify_bundle

SMALL_FILE_LIMIT = 64 * 1024
EDGE = 4 * 1024
#: Positions between the edges of a large file are visited at this fixed step (a prime, so the
#: visited offsets fall on every residue of any power-of-two block size).
BIG_FILE_STRIDE = 4093
TEXT_SUFFIXES = (".csv", ".json", ".md", ".html")
ARTIFACT = Path(__file__).parents[2] / "test-artifacts" / "tamper-counts.json"
UNTRUSTED = fixed_key("untrusted-release")

#: category -> counts and details, filled by the tests, written when the module ends
COUNTS: dict[str, dict[str, Any]] = {}


# --- the bundle ---------------------------------------------------------------------------------


def _rows(n: int) -> pl.DataFrame:
    """Deterministic synthetic rows shaped like the Adult extract the CLI tests use."""
    work = ["Private", "Self-emp-not-inc", "State-gov", "Local-gov", "Federal-gov"]
    edu = ["HS-grad", "Some-college", "Bachelors", "Masters", "Assoc-voc", "11th"]
    return pl.DataFrame({
        "age": [18 + (i * 37) % 60 for i in range(n)],
        "workclass": [work[(i * 7) % len(work)] for i in range(n)],
        "education": [edu[(i * 5) % len(edu)] for i in range(n)],
        "hours_per_week": [20 + (i * 13) % 45 for i in range(n)],
        "capital_gain": [0 if i % 9 else (i * 211) % 15000 for i in range(n)],
        "income": ["<=50K" if (i * 11) % 4 else ">50K" for i in range(n)],
    })


def _report_html(size: int) -> bytes:
    """An HTML report with a ``size``-byte inline script, as when plotly.js is inlined."""
    head = b"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>synthgate report</title>\n<script>\n"
    lines, total, i = [], 0, 0
    while total < size:
        line = f"var f{i:06d}=function(a,b){{return (a*{i % 997}+b)%{(i * 31) % 1009 + 1}}};\n".encode()
        lines.append(line)
        total += len(line)
        i += 1
    tail = (
        b"</script></head>\n<body><h1>Release report</h1>\n"
        b"<table><tr><th>check</th><th>value</th><th>threshold</th><th>result</th></tr>\n"
        b"<tr><td>membership_inference_auc</td><td>0.52</td><td>&lt;= 0.6</td><td>pass</td></tr>\n"
        b"<tr><td>tvd_1way</td><td>0.04</td><td>&lt;= 0.1</td><td>pass</td></tr></table>\n</body></html>\n"
    )
    return head + b"".join(lines) + tail


def bundle_files() -> dict[str, bytes]:
    frame = _rows(120)
    parquet = io.BytesIO()
    frame.write_parquet(parquet)
    audit = {
        "schema_version": 1,
        "run_id": RUN_ID,
        "audits": [
            {"name": "membership_inference_auc", "value": 0.52, "interval": [0.47, 0.57], "threshold": 0.6,
             "goal": "minimize", "passed": True, "method": "distance to closest record, train vs holdout"},
            {"name": "tvd_1way", "value": 0.04, "interval": None, "threshold": 0.1, "goal": "minimize",
             "passed": True, "method": "mean total variation distance over one-way marginals"},
        ],
        "columns": {c: {"tvd": round(0.01 * (k + 1), 3)} for k, c in enumerate(frame.columns)},
    }
    return {
        "synthetic.parquet": parquet.getvalue(),
        "synthetic.csv": frame.write_csv().encode(),
        "audit.json": (json.dumps(audit, indent=2) + "\n").encode(),
        "report.html": _report_html(3 * 1024 * 1024),
        "privacy-statement.md": (
            f"# Privacy statement for release of run {RUN_ID}\n\n## Guarantee\n"
            "The synthetic data in this bundle was produced by the `mst` generator under "
            "**(1, 1e-06)-differential privacy** with respect to one record of the training split.\n\n"
            "## What is not covered\n- The audit figures in `audit.json` and `report.html` are "
            "**not** differentially private.\n"
        ).encode(),
        "datasheet.md": (
            "# Datasheet: synthetic release of `adult`\n\n## Composition\nEach row is synthetic.\n\n"
            "| column | type | domain |\n| --- | --- | --- |\n"
            + "".join(f"| {c} | {t} | public |\n" for c, t in zip(frame.columns, frame.dtypes, strict=True))
        ).encode(),
    }


@dataclass
class Bundle:
    root: Path
    files: dict[str, bytes]  # every file of the folder, manifest included, as written
    predicate: dict[str, Any]
    statement: dict[str, Any]
    scratch: Path  # a folder outside the bundle for copies

    def assert_pristine(self) -> None:
        """The folder holds exactly the bytes written, and verifies: the last case restored it."""
        assert sorted(os.listdir(self.root)) == sorted(self.files)
        for name, data in self.files.items():
            path = self.root / name
            assert not path.is_symlink() and path.read_bytes() == data, f"{name} was not restored"
        verify_bundle(self.root, TRUSTED)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    base = tmp_path_factory.mktemp("tamper")
    files = bundle_files()
    predicate = make_predicate(files)
    predicate["event_log_head"] = {"id": 42, "hash": sha256_hex(b"the 42nd event")}
    root = write_bundle(base / "bundle", files, predicate, RELEASE)
    result = verify_bundle(root, TRUSTED)
    written = {p.name: p.read_bytes() for p in root.iterdir()}
    assert set(written) == {*files, MANIFEST_NAME}
    scratch = base / "scratch"
    scratch.mkdir()
    return Bundle(root=root, files=written, predicate=result.predicate, statement=result.statement, scratch=scratch)


@pytest.fixture(scope="module", autouse=True)
def _write_counts() -> Iterator[None]:
    started = time.perf_counter()
    yield
    document = {
        "module": "tests/release/test_tamper.py",
        "seconds": round(time.perf_counter() - started, 1),
        "small_file_limit_bytes": SMALL_FILE_LIMIT,
        "big_file_edge_bytes": EDGE,
        "big_file_stride_bytes": BIG_FILE_STRIDE,
        "categories": COUNTS,
        "tried": sum(c["tried"] for c in COUNTS.values()),
        "missed": sum(c["missed"] for c in COUNTS.values()),
    }
    write_atomic(ARTIFACT, (json.dumps(document, indent=2) + "\n").encode())


# --- counting -----------------------------------------------------------------------------------


@dataclass
class Tally:
    """Cases tried and missed in one category; a few examples of the misses for the failure message."""

    category: str
    tried: int = 0
    missed: int = 0
    examples: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def check(self, case: str, attempt: Callable[[], Any]) -> None:
        """Run ``attempt`` (a verification of the tampered bundle); only IntegrityError is a catch."""
        self.tried += 1
        try:
            attempt()
        except IntegrityError:
            return
        except Exception as exc:  # a crash is not a refusal with exit code 5
            outcome = f"raised {type(exc).__name__}: {exc}"
        else:
            outcome = "accepted"
        self.missed += 1
        if len(self.examples) < 10:
            self.examples.append(f"{case}: {outcome}")

    def report(self, capsys: pytest.CaptureFixture[str], how: str) -> None:
        COUNTS[self.category] = {"tried": self.tried, "missed": self.missed, "how": how, **self.details}
        with capsys.disabled():
            print(f"\ntamper {self.category}: tried {self.tried}, missed {self.missed} ({how})")
        assert self.tried > 0
        assert self.missed == 0, "\n".join(self.examples)


def _verify(bundle: Bundle, **kwargs: Any) -> Callable[[], Any]:
    return lambda: verify_bundle(bundle.root, TRUSTED, **kwargs)


# --- every byte ---------------------------------------------------------------------------------


_WHITESPACE_SWAP = {0x20: 0x09, 0x09: 0x20, 0x0A: 0x20, 0x0D: 0x0A}


def look_alike(byte: int) -> int:
    """A different byte that keeps text plausible: another whitespace (JSON stays valid), the other
    letter case (Base64 stays valid), another digit; otherwise the neighbouring code point."""
    if byte in _WHITESPACE_SWAP:
        return _WHITESPACE_SWAP[byte]
    if 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A:
        return byte ^ 0x20
    if 0x30 <= byte <= 0x39:
        return 0x30 + (byte - 0x30 + 5) % 10
    return byte ^ 0x02


def big_file_positions(size: int) -> list[int]:
    """Every position of the first and last ``EDGE`` bytes, and every ``BIG_FILE_STRIDE``-th in between."""
    middle = range(EDGE, size - EDGE, BIG_FILE_STRIDE)
    return sorted({*range(min(EDGE, size)), *middle, *range(max(size - EDGE, 0), size)})


def _flip_each(bundle: Bundle, tally: Tally, name: str, positions: list[int], replace: Callable[[int], int]) -> None:
    original = bundle.files[name]
    fd = os.open(bundle.root / name, os.O_RDWR)
    try:
        for position in positions:
            old = original[position]
            new = replace(old)
            assert new != old
            os.pwrite(fd, bytes([new]), position)
            try:
                tally.check(f"{name}[{position}] {old:#04x}->{new:#04x}", _verify(bundle))
            finally:
                os.pwrite(fd, bytes([old]), position)
    finally:
        os.close(fd)


def test_every_byte_of_every_small_file(bundle: Bundle, capsys: pytest.CaptureFixture[str]) -> None:
    bundle.assert_pristine()
    tally = Tally("byte changes, files <= 64 KiB")
    per_file: dict[str, int] = {}
    for name, data in sorted(bundle.files.items()):
        if len(data) > SMALL_FILE_LIMIT:
            continue
        before = tally.tried
        positions = list(range(len(data)))
        _flip_each(bundle, tally, name, positions, lambda b: b ^ 0x01)
        if name.endswith(TEXT_SUFFIXES):
            _flip_each(bundle, tally, name, positions, look_alike)
        per_file[name] = tally.tried - before
    bundle.assert_pristine()
    # the manifest and the small data files are all here: a bundle whose files all grew would test nothing
    assert {MANIFEST_NAME, "synthetic.csv", "synthetic.parquet", "audit.json"} <= per_file.keys()
    tally.details = {"per_file_cases": per_file}
    tally.report(capsys, "every position; XOR 0x01, plus a look-alike byte in text files")


def test_every_large_file_at_edges_and_stride(bundle: Bundle, capsys: pytest.CaptureFixture[str]) -> None:
    bundle.assert_pristine()
    tally = Tally("byte changes, files > 64 KiB")
    per_file: dict[str, dict[str, int]] = {}
    for name, data in sorted(bundle.files.items()):
        if len(data) <= SMALL_FILE_LIMIT:
            continue
        positions = big_file_positions(len(data))
        # the stride reaches the end: no gap in the middle is wider than the step
        gaps = [b - a for a, b in zip(positions, positions[1:], strict=False)]
        assert max(gaps) <= BIG_FILE_STRIDE and positions[0] == 0 and positions[-1] == len(data) - 1
        before = tally.tried
        _flip_each(bundle, tally, name, positions, lambda b: b ^ 0x01)
        per_file[name] = {"size": len(data), "cases": tally.tried - before}
    bundle.assert_pristine()
    assert "report.html" in per_file  # the module's bundle is built so that this path is exercised
    tally.details = {"per_file": per_file, "stride_bytes": BIG_FILE_STRIDE, "edge_bytes": EDGE}
    sizes = ", ".join(f"{n} {v['size'] / 2**20:.1f} MiB" for n, v in per_file.items())
    tally.report(capsys, f"{sizes}: every byte of the first and last 4 KiB, the rest at a step of "
                         f"{BIG_FILE_STRIDE} bytes; XOR 0x01")


# --- files removed, renamed, added, linked ------------------------------------------------------


def _restore(bundle: Bundle) -> None:
    """Put the folder back as written (after structural changes), without touching unchanged files."""
    for entry in os.scandir(bundle.root):
        if entry.name not in bundle.files or entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    for name, data in bundle.files.items():
        path = bundle.root / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)


def _case(bundle: Bundle, tally: Tally, case: str, change: Callable[[], None], **kwargs: Any) -> None:
    change()
    try:
        tally.check(case, _verify(bundle, **kwargs))
    finally:
        _restore(bundle)


def test_every_file_removed(bundle: Bundle, capsys: pytest.CaptureFixture[str]) -> None:
    bundle.assert_pristine()
    tally = Tally("files removed")
    for name in sorted(bundle.files):
        _case(bundle, tally, name, lambda n=name: (bundle.root / n).unlink())
    bundle.assert_pristine()
    tally.report(capsys, "each file of the folder, the manifest included")


def test_every_file_renamed(bundle: Bundle, capsys: pytest.CaptureFixture[str]) -> None:
    bundle.assert_pristine()
    tally = Tally("files renamed")
    names = sorted(bundle.files)
    for name in names:
        for new in (f"renamed-{name}", name.upper(), f".{name}", f"{name}.bak"):
            _case(bundle, tally, f"{name} -> {new}", lambda n=name, m=new: os.rename(bundle.root / n, bundle.root / m))

    def swap(a: str, b: str) -> None:
        os.rename(bundle.root / a, bundle.scratch / "swap")
        os.rename(bundle.root / b, bundle.root / a)
        os.rename(bundle.scratch / "swap", bundle.root / b)

    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    for a, b in pairs:
        _case(bundle, tally, f"{a} <-> {b}", lambda a=a, b=b: swap(a, b))
    bundle.assert_pristine()
    tally.report(capsys, f"each file to 4 other names, and {len(pairs)} pairs swapped")


def test_extra_files_added(bundle: Bundle, capsys: pytest.CaptureFixture[str]) -> None:
    bundle.assert_pristine()
    tally = Tally("files added")
    csv = bundle.files["synthetic.csv"]

    def add(relative: str, data: bytes | None) -> Callable[[], None]:
        def change() -> None:
            path = bundle.root / relative
            if data is None:
                path.mkdir(parents=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)

        return change

    cases: dict[str, bytes | None] = {
        "notes.txt": b"not released\n",
        ".hidden": b"",
        "MANIFEST.JSON": bundle.files[MANIFEST_NAME],
        "manifest.json.sig": b"sig",
        "synthetic-copy.csv": csv,
        "Synthetic.csv": csv,
        "extra/notes.txt": b"not released\n",
        "extra/manifest.json": bundle.files[MANIFEST_NAME],
        "synthetic/synthetic.csv": csv,
        "a/b/c/deep.csv": csv,
        "empty-folder": None,
        ".git/HEAD": b"ref: refs/heads/main\n",
    }
    for relative, data in cases.items():
        _case(bundle, tally, relative, add(relative, data))
    bundle.assert_pristine()
    tally.report(capsys, f"{len(cases)} additions: files at the top level, in sub-folders, an empty folder")


def test_every_file_replaced_by_a_symlink(bundle: Bundle, capsys: pytest.CaptureFixture[str]) -> None:
    bundle.assert_pristine()
    tally = Tally("files replaced by symlinks")
    for name, data in sorted(bundle.files.items()):
        # the link points at identical bytes: only the refusal of links can catch it
        target = bundle.scratch / f"copy-{name}"
        target.write_bytes(data)

        def absolute(n: str = name, t: Path = target) -> None:
            (bundle.root / n).unlink()
            (bundle.root / n).symlink_to(t)

        def relative(n: str = name, t: Path = target) -> None:
            (bundle.root / n).unlink()
            (bundle.root / n).symlink_to(os.path.relpath(t, bundle.root))

        _case(bundle, tally, f"{name} -> {target} (absolute)", absolute)
        _case(bundle, tally, f"{name} -> {target} (relative)", relative)
    # and a link added beside the files, to a file of the bundle itself
    _case(bundle, tally, "extra link to synthetic.csv",
          lambda: (bundle.root / "synthetic-link.csv").symlink_to("synthetic.csv"))
    bundle.assert_pristine()
    tally.report(capsys, "each file by an absolute and a relative link to an identical copy, plus an extra link")


# --- signatures ---------------------------------------------------------------------------------


def _sign(statement: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    return sign_envelope(canonical_json(statement), IN_TOTO_PAYLOAD_TYPE, key)


def _write_envelope(bundle: Bundle, envelope: dict[str, Any]) -> Callable[[], None]:
    return lambda: (bundle.root / MANIFEST_NAME).write_bytes(manifest_bytes(envelope))


def test_statement_resigned_with_an_untrusted_key(bundle: Bundle, capsys: pytest.CaptureFixture[str]) -> None:
    bundle.assert_pristine()
    tally = Tally("statement re-signed with an untrusted key")
    statement = bundle.statement
    original = json.loads(bundle.files[MANIFEST_NAME])
    untrusted_id = key_id(UNTRUSTED.public_key())

    as_untrusted = copy.deepcopy(statement)
    as_untrusted["predicate"]["release_keyid"] = untrusted_id
    looser_gate = copy.deepcopy(statement)
    looser_gate["predicate"]["gate"]["checks"][0]["threshold"] = 0.99
    more_budget = copy.deepcopy(statement)
    more_budget["predicate"]["spend"]["epsilon"] = 0.1
    other_data = copy.deepcopy(statement)
    other_data["subject"][0]["digest"]["sha256"] = sha256_hex(b"other data")

    envelopes: dict[str, dict[str, Any]] = {
        "same statement": _sign(statement, UNTRUSTED),
        "release_keyid set to the untrusted key": _sign(as_untrusted, UNTRUSTED),
        "gate threshold loosened": _sign(looser_gate, UNTRUSTED),
        "epsilon lowered": _sign(more_budget, UNTRUSTED),
        "a subject digest changed": _sign(other_data, UNTRUSTED),
        "trusted signature's keyid relabelled to the untrusted key": {
            **original, "signatures": [{"keyid": untrusted_id, "sig": original["signatures"][0]["sig"]}],
        },
        "trusted signature plus an untrusted one": {
            **original, "signatures": original["signatures"] + _sign(statement, UNTRUSTED)["signatures"],
        },
        "untrusted signature before the trusted one": {
            **original, "signatures": _sign(statement, UNTRUSTED)["signatures"] + original["signatures"],
        },
        "untrusted signature over a changed gate, plus the trusted one": {
            **_sign(looser_gate, UNTRUSTED),
            "signatures": _sign(looser_gate, UNTRUSTED)["signatures"] + original["signatures"],
        },
    }
    for case, envelope in envelopes.items():
        _case(bundle, tally, case, _write_envelope(bundle, envelope))
    # a reader who trusts that key accepts its envelope: the refusals above are the trust decision
    resigned = bundle.scratch / "resigned-bundle"
    shutil.copytree(bundle.root, resigned)
    (resigned / MANIFEST_NAME).write_bytes(manifest_bytes(envelopes["release_keyid set to the untrusted key"]))
    assert verify_bundle(resigned, [UNTRUSTED.public_key()]).release_keyid == untrusted_id
    bundle.assert_pristine()
    tally.report(capsys, f"{len(envelopes)} valid DSSE envelopes signed or co-signed by a key the reader does not trust")


# --- approvals ----------------------------------------------------------------------------------


OTHER_RUN = "run-20250602-0b1c"


def _other_run_approvals(bundle: Bundle) -> list[dict[str, str]]:
    """Genuine approvals by the same stewards of another run's approval statement."""
    statement = copy.deepcopy(bundle.predicate["approval_statement"])
    statement["run_id"] = OTHER_RUN
    statement["files"]["synthetic.csv"] = sha256_hex(b"the other run's rows")
    digest = sha256_hex(canonical_json(statement))
    return [
        sign_decision(key, run_id=OTHER_RUN, statement_digest=digest, decision="approve", steward=name, comment="")
        for name, key in (("alice", ALICE), ("bob", BOB))
    ]


def test_forged_or_swapped_approvals(bundle: Bundle, capsys: pytest.CaptureFixture[str]) -> None:
    bundle.assert_pristine()
    tally = Tally("approvals swapped or forged")
    predicate = bundle.predicate
    mine = predicate["approvals"]
    theirs = _other_run_approvals(bundle)
    digest = predicate["approval_statement_digest"]

    def edited(edit: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """The predicate edited and the statement re-signed with the *trusted* release key."""
        statement = copy.deepcopy(bundle.statement)
        edit(statement["predicate"])
        return _write_envelope(bundle, _sign(statement, RELEASE))

    def set_approvals(records: list[dict[str, str]]) -> Callable[[dict[str, Any]], None]:
        return lambda p: p.__setitem__("approvals", copy.deepcopy(records))

    mallory_as_alice = sign_decision(MALLORY, run_id=RUN_ID, statement_digest=digest, decision="approve",
                                     steward="alice", comment="")
    mallory = sign_decision(MALLORY, run_id=RUN_ID, statement_digest=digest, decision="approve",
                            steward="mallory", comment="")

    def add_mallory(p: dict[str, Any]) -> None:
        p["stewards"]["mallory"] = {"public_key_pem": public_key_pem(MALLORY.public_key()),
                                    "keyid": key_id(MALLORY.public_key())}
        p["approvals"] = [mine[0], mallory]

    def bob_rejected_turned_approve(p: dict[str, Any]) -> None:
        rejection = sign_decision(BOB, run_id=RUN_ID, statement_digest=digest, decision="reject", steward="bob",
                                  comment="re-identification risk")
        p["approvals"] = [mine[0], {**rejection, "decision": "approve"}]

    cases: dict[str, tuple[Callable[[], None], dict[str, Any]]] = {
        "bob's approval of another run swapped in": (edited(set_approvals([mine[0], theirs[1]])), {}),
        "both approvals from another run": (edited(set_approvals(theirs)), {}),
        "another run's approval relabelled to this run": (
            edited(set_approvals([mine[0], {**theirs[1], "run_id": RUN_ID}])), {}),
        "another run's approval relabelled to this run and statement": (
            edited(set_approvals([mine[0], {**theirs[1], "run_id": RUN_ID, "statement_digest": digest}])), {}),
        "another run's signature pasted into bob's record": (
            edited(set_approvals([mine[0], {**mine[1], "sig": theirs[1]["sig"]}])), {}),
        "alice's signature pasted into bob's record": (
            edited(set_approvals([mine[0], {**mine[1], "sig": mine[0]["sig"]}])), {}),
        "unregistered key signing as alice": (edited(set_approvals([mallory_as_alice, mine[1]])), {}),
        "unregistered key signing as alice, keyid relabelled": (
            edited(set_approvals([{**mallory_as_alice, "keyid": mine[0]["keyid"]}, mine[1]])), {}),
        "unregistered steward's approval": (edited(set_approvals([mine[0], mallory])), {}),
        "alice's approval twice, bob's dropped": (edited(set_approvals([mine[0], mine[0]])), {}),
        "bob's rejection edited to an approval": (edited(bob_rejected_turned_approve), {}),
        "unregistered steward added to the manifest's stewards, readers pin the registered ones": (
            edited(add_mallory),
            {"trusted_stewards": [ALICE.public_key(), BOB.public_key()]},
        ),
        "data swapped, statement re-signed by the trusted key, approvals kept": (_swap_data_and_resign(bundle), {}),
    }
    for case, (change, kwargs) in cases.items():
        _case(bundle, tally, case, change, **kwargs)
    bundle.assert_pristine()
    tally.report(capsys, f"{len(cases)} cases, each manifest re-signed by the trusted release key")


def _swap_data_and_resign(bundle: Bundle) -> Callable[[], None]:
    """Another synthetic.csv, a statement naming its digest, signed by the trusted release key."""
    data = b"age,income\n40,>50K\n"
    statement = copy.deepcopy(bundle.statement)
    for subject in statement["subject"]:
        if subject["name"] == "synthetic.csv":
            subject["digest"]["sha256"] = sha256_hex(data)
    envelope = _sign(statement, RELEASE)

    def change() -> None:
        (bundle.root / "synthetic.csv").write_bytes(data)
        (bundle.root / MANIFEST_NAME).write_bytes(manifest_bytes(envelope))

    return change


def test_the_untampered_bundle_verifies(bundle: Bundle) -> None:
    """The control: without a change, the same calls accept the bundle (pinned stewards included)."""
    bundle.assert_pristine()
    result = verify_bundle(bundle.root, TRUSTED, trusted_stewards=[ALICE.public_key(), BOB.public_key()])
    assert [a["steward"] for a in result.approvals] == ["alice", "bob"]
    subjects = {s["name"]: s["digest"]["sha256"] for s in result.statement["subject"]}
    assert subjects == {n: hashlib.sha256(d).hexdigest() for n, d in bundle.files.items() if n != MANIFEST_NAME}
