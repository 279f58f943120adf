"""Archives that try to escape, or to smuggle a second reading of the bundle, are refused.

Each archive below is a genuine bundle archive plus (or with one member replaced by) one hostile
member. ``synthgate verify ARCHIVE --trust KEY`` must exit 5 with one ``synthgate: error:`` line and
no traceback, ``verify_bundle`` must raise ``IntegrityError`` for the expected reason, and nothing
may be written outside the temporary extraction folder: the test points ``tempfile`` at a folder
of its own and checks that this folder and everything around the archive are unchanged.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_bundle_verify import RELEASE, TRUSTED, build

from privacy.errors import IntegrityError
from release.cli.main import cli
from release.keys import public_key_pem
from release.verify import verify_bundle

Member = tuple[tarfile.TarInfo, bytes | None]


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> list[Member]:
    """The members of a valid bundle archive: the folder ``bundle`` and its files."""
    root = build(tmp_path_factory.mktemp("genuine"))
    members: list[Member] = [(_info("bundle", tarfile.DIRTYPE), None)]
    for path in sorted(root.iterdir()):
        data = path.read_bytes()
        members.append((_info(f"bundle/{path.name}", size=len(data)), data))
    return members


def _info(name: str, kind: bytes = tarfile.REGTYPE, *, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.linkname = link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def _file(name: str, data: bytes = b"x") -> Member:
    return _info(name, size=len(data)), data


def _special(name: str, kind: bytes, link: str = "") -> Member:
    return _info(name, kind, link=link), None


def _write(archive: Path, members: list[Member], fmt: int = tarfile.PAX_FORMAT) -> Path:
    with tarfile.open(archive, "w:gz", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return archive


def _snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its kind and, for files, a digest of the bytes."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = f"link {os.readlink(path)}"
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _without(members: list[Member], name: str) -> list[Member]:
    return [m for m in members if m[0].name != name]


# Each case: (id, how to change the genuine members (given the test's tmp_path), expected reason).
Case = tuple[str, Callable[[list[Member], Path], list[Member]], str]

CASES: list[Case] = [
    ("dotdot", lambda m, t: [*m, _file("../evil")], "escapes the bundle folder"),
    ("dotdot-deep", lambda m, t: [*m, _file("../../../evil")], "escapes the bundle folder"),
    ("dotdot-inside", lambda m, t: [*m, _file("bundle/../../evil")], "escapes the bundle folder"),
    ("dotdot-as-bundle-file", lambda m, t: [*_without(m, "bundle/synthetic.csv"),
                                            _file("bundle/../synthetic.csv")], "escapes the bundle folder"),
    ("backslash", lambda m, t: [*m, _file("bundle\\..\\..\\evil")], "escapes the bundle folder"),
    ("absolute", lambda m, t: [*m, _file(str(t / "absolute-evil"))], "has an absolute path"),
    ("absolute-bundle-file", lambda m, t: [*_without(m, "bundle/synthetic.csv"),
                                           _file(str(t / "bundle" / "synthetic.csv"))], "has an absolute path"),
    ("drive-letter", lambda m, t: [*m, _file("C:/evil")], "has an absolute path"),
    ("symlink-out", lambda m, t: [*m, _special("bundle/link", tarfile.SYMTYPE, str(t / "victim.txt"))], "is a link"),
    # the classic: a link, then a file of the same name written through it
    ("symlink-then-write", lambda m, t: [*m, _special("bundle/notes", tarfile.SYMTYPE, str(t / "victim.txt")),
                                         _file("bundle/notes", b"overwritten")], "is a link"),
    ("symlink-as-bundle-file", lambda m, t: [*_without(m, "bundle/synthetic.csv"),
                                             _special("bundle/synthetic.csv", tarfile.SYMTYPE, "../../victim.txt")],
     "is a link"),
    ("symlink-top", lambda m, t: [_special("bundle", tarfile.SYMTYPE, str(t)), *m[1:]], "is a link"),
    ("hardlink-out", lambda m, t: [*m, _special("bundle/hard", tarfile.LNKTYPE, str(t / "victim.txt"))], "is a link"),
    ("hardlink-as-bundle-file", lambda m, t: [*_without(m, "bundle/datasheet.md"),
                                              _special("bundle/datasheet.md", tarfile.LNKTYPE,
                                                       "bundle/synthetic.csv")], "is a link"),
    ("char-device", lambda m, t: [*m, _special("bundle/tty", tarfile.CHRTYPE)], "device, fifo"),
    ("block-device", lambda m, t: [*m, _special("bundle/sda", tarfile.BLKTYPE)], "device, fifo"),
    ("fifo", lambda m, t: [*m, _special("bundle/pipe", tarfile.FIFOTYPE)], "device, fifo"),
    ("fifo-as-bundle-file", lambda m, t: [*_without(m, "bundle/report.html"),
                                          _special("bundle/report.html", tarfile.FIFOTYPE)], "device, fifo"),
    # a second copy of a file: a reader that keeps the last one would see other data than we checked
    ("duplicate", lambda m, t: [*m, _file("bundle/synthetic.csv", b"age\n1\n")], "appears twice"),
    ("duplicate-dot", lambda m, t: [*m, _file("bundle/./synthetic.csv", b"age\n1\n")], "appears twice"),
    ("duplicate-slashes", lambda m, t: [*m, _file("bundle//synthetic.csv", b"age\n1\n")], "appears twice"),
    ("duplicate-manifest", lambda m, t: [*m, _file("bundle/manifest.json", b"{}")], "appears twice"),
    ("second-top-folder", lambda m, t: [*m, _file("other/synthetic.csv")], "more than one top-level entry"),
    ("file-beside-the-folder", lambda m, t: [*m, _file("README")], "more than one top-level entry"),
    ("file-at-top-level-only", lambda m, t: [_file("manifest.json", b"{}")], "is not inside the bundle folder"),
    ("sub-folder", lambda m, t: [*m, _file("bundle/sub/file")], "a bundle has no sub-folders"),
    ("dir-named-like-a-bundle-file", lambda m, t: [*_without(m, "bundle/report.html"),
                                                   _special("bundle/report.html", tarfile.DIRTYPE)],
     "a bundle has no sub-folders"),
    ("dir-beside-a-bundle-file", lambda m, t: [*m, _special("bundle/report.html", tarfile.DIRTYPE)],
     "no sub-folders|appears twice"),
    # declares a terabyte it does not hold: refused before anything is written
    ("huge-declared-size", lambda m, t: [*m, (_info("bundle/huge.bin", size=1 << 40), None)],
     "not a readable .tar.gz bundle"),
    ("empty", lambda m, t: [], "archive is empty"),
]


def test_the_genuine_archive_verifies(genuine: list[Member], tmp_path: Path) -> None:
    """The control: the same members, unchanged, make a bundle that verifies."""
    archive = _write(tmp_path / "genuine.tar.gz", genuine)
    assert verify_bundle(archive, TRUSTED).files


@pytest.mark.parametrize(("edit", "reason"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_archive_is_refused_and_writes_nothing(
    genuine: list[Member],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    edit: Callable[[list[Member], Path], list[Member]],
    reason: str,
) -> None:
    (tmp_path / "victim.txt").write_text("do not touch\n")
    key = tmp_path / "release.pub"
    key.write_text(public_key_pem(RELEASE.public_key()))
    scratch = tmp_path / "tmp"  # the parent of the verifier's temporary extraction folder
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    archive = _write(tmp_path / "hostile.tar.gz", edit(list(genuine), tmp_path))
    before = _snapshot(tmp_path)

    with pytest.raises(IntegrityError, match=reason):
        verify_bundle(archive, TRUSTED)
    assert _snapshot(tmp_path) == before

    res = CliRunner().invoke(cli, ["verify", str(archive), "--trust", str(key)])
    assert res.exit_code == 5, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synthgate: error:"), res.stderr
    assert str(archive) in lines[0]
    assert "Traceback" not in res.stdout + res.stderr and res.stdout == ""
    assert _snapshot(tmp_path) == before
    assert os.listdir(scratch) == []


def test_gnu_format_names_are_checked_too(genuine: list[Member], tmp_path: Path) -> None:
    # GNU long names and links travel in extra headers; the checks see the final names
    long_escape = "bundle/" + "../" * 60 + "evil"
    archive = _write(tmp_path / "gnu.tar.gz", [*genuine, _file(long_escape)], fmt=tarfile.GNU_FORMAT)
    with pytest.raises(IntegrityError, match="escapes the bundle folder"):
        verify_bundle(archive, TRUSTED)
    archive = _write(tmp_path / "gnu-link.tar.gz",
                     [*genuine, _special("bundle/l", tarfile.SYMTYPE, "/" + "x" * 200)], fmt=tarfile.GNU_FORMAT)
    with pytest.raises(IntegrityError, match="is a link"):
        verify_bundle(archive, TRUSTED)


def test_pax_path_header_is_checked(genuine: list[Member], tmp_path: Path) -> None:
    # a PAX "path" record overrides the name in the ustar header, which here looks harmless
    info, data = _file("bundle/harmless.txt", b"x")
    info.pax_headers = {"path": "../evil"}
    archive = _write(tmp_path / "pax.tar.gz", [*genuine, (info, data)])
    with tarfile.open(archive) as tar:
        assert "../evil" in tar.getnames()
    with pytest.raises(IntegrityError, match="escapes the bundle folder"):
        verify_bundle(archive, TRUSTED)


def test_archive_larger_than_the_free_space_is_refused_before_writing(
    genuine: list[Member], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    archive = _write(tmp_path / "bundle.tar.gz", genuine)
    declared = sum(len(data) for _, data in genuine if data is not None)
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real_usage(p)._replace(free=declared - 1))
    written: list[str] = []
    real_open = open

    def watching_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "x" in mode or "w" in mode or "a" in mode:
            written.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", watching_open)
    with pytest.raises(IntegrityError, match=f"declares {declared} bytes of files, more than the {declared - 1}"):
        verify_bundle(archive, TRUSTED)
    assert written == [] and os.listdir(scratch) == []
    # with the space there, the same archive verifies
    monkeypatch.setattr(shutil, "disk_usage", real_usage)
    assert verify_bundle(archive, TRUSTED).files
