"""Safe extraction: every kind of malicious or damaged archive is refused, and a
refusal leaves nothing behind (no target, no temporaries, nothing outside)."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "runtime") not in sys.path:
    sys.path.insert(0, str(REPO / "runtime"))

from everest_runtime import manifest  # noqa: E402
from everest_runtime.errors import ArchiveError, DamagedArchive  # noqa: E402
from everest_runtime.manifest import sha256_file  # noqa: E402
from everest_runtime.unarchive import Limits, extract  # noqa: E402


def make_tar(path: Path, members: list[tuple], gz: bool = True) -> Path:
    """members: (name, kind, data-or-linkname); kind in file, dir, sym, hard, chr, fifo."""
    with tarfile.open(path, "w:gz" if gz else "w") as tf:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            payload = None
            if kind == "file":
                payload = data if isinstance(data, bytes) else data.encode()
                info.size = len(payload)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, data
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, data
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tf.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def make_zip(path: Path, members: list[tuple]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, kind, data in members:
            info = zipfile.ZipInfo(name)
            if kind == "sym":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            elif kind == "chr":
                info.external_attr = (stat.S_IFCHR | 0o644) << 16
            else:
                info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, data)
    return path


def assert_clean(tmp_path: Path, target: Path) -> None:
    assert not target.exists()
    leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}")]
    assert leftovers == []
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path.parent / "escaped").exists()


def test_good_tar_gz_with_internal_links_extracts(tmp_path):
    archive = make_tar(
        tmp_path / "ok.tar.gz",
        [
            ("top/", "dir", None),
            ("top/a.txt", "file", "alpha"),
            ("top/run.sh", "file", "#!/bin/sh\n"),
            ("top/sub/b.txt", "file", "beta"),
            ("top/link", "sym", "sub/b.txt"),
            ("top/hard", "hard", "top/a.txt"),
        ],
    )
    target = tmp_path / "out"
    assert extract(archive, target, strip_single_root=True) == 6
    assert (target / "a.txt").read_text() == "alpha"
    assert (target / "link").read_text() == "beta"
    assert (target / "hard").read_text() == "alpha"
    assert_clean_siblings = [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    assert assert_clean_siblings == []


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_digests_are_those_of_the_files_written(tmp_path, kind):
    """Hashed while written (the cache manifest reads nothing twice): each equals a
    fresh read of the file, under its path after the root is stripped, for a member
    written twice (the last wins) and for a hard link's copy too."""
    members = [
        ("top/a.txt", "file", "alpha"),
        ("top/sub/b.bin", "file", os.urandom(3 << 20)),
        ("top/a.txt", "file", "alpha, again"),
        ("top/link", "sym", "sub/b.bin"),
    ]
    if kind == "tar":
        archive = make_tar(tmp_path / "ok.tar.gz", [*members, ("top/hard", "hard", "top/a.txt")])
    else:
        archive = make_zip(tmp_path / "ok.zip", members[:2] + members[3:])
    target = tmp_path / "out"
    digests: dict = {}
    extract(archive, target, strip_single_root=True, digests=digests)
    files = [p for p in target.rglob("*") if p.is_file() and not p.is_symlink()]
    expected = {str(p.relative_to(target)): (p.stat().st_size, sha256_file(str(p))) for p in files}
    assert digests == expected
    assert set(expected) == (
        {"a.txt", "sub/b.bin", "hard"} if kind == "tar" else {"a.txt", "sub/b.bin"}
    )


def test_manifest_takes_known_digests_and_reads_only_the_rest(tmp_path):
    # A digest whose size matches is taken as is (no second read); one whose size
    # does not is recomputed. --verify-cache still reads every file.
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_bytes(b"alpha")
    (tree / "b").write_bytes(b"beta")
    fake = "f" * 64
    manifest.write(tree, {"a": (5, fake), "b": (99, fake)})
    entries = json.loads((tree / manifest.MANIFEST_FILE).read_text())["entries"]
    assert {e["path"]: e["sha256"] for e in entries} == {
        "a": fake,
        "b": sha256_file(str(tree / "b")),
    }
    assert manifest.problem(tree) is None
    assert manifest.problem(tree, full=True) == "a changed"


def test_good_zip_extracts_and_keeps_a_single_root_when_not_stripping(tmp_path):
    archive = make_zip(tmp_path / "ok.zip", [("d/x.csv", "file", "1,2\n")])
    assert extract(archive, tmp_path / "out") == 1
    assert (tmp_path / "out" / "d" / "x.csv").read_text() == "1,2\n"


# case: (members, the refusal's reason). Pinning the reason proves the check meant
# for the case fired: a link check that stopped working would otherwise go unseen
# behind the final resolve-every-link pass, which catches most of these too.
TAR_ATTACKS = {
    "absolute path": ([("/tmp/escaped", "file", "x")], "'/tmp/escaped' has an absolute path"),
    "dot-dot": ([("a/../../escaped", "file", "x")], "'a/../../escaped' contains '..'"),
    "symlink outside": ([("evil", "sym", "../escaped")], "'evil' -> '../escaped' points outside"),
    "absolute symlink": ([("evil", "sym", "/etc/passwd")], "'evil' -> '/etc/passwd' is absolute"),
    "write through symlink": (
        [("lnk", "sym", "sub"), ("sub/", "dir", None), ("lnk/f", "file", "x")],
        "'lnk/f' would be written through a link",
    ),
    "symlink chain outside": (
        [("d/", "dir", None), ("d/b", "sym", ".."), ("a", "sym", "d/b/..")],
        "link 'a' resolves outside",
    ),
    "hard link outside": ([("h", "hard", "../../etc/passwd")], "'../../etc/passwd' contains '..'"),
    "hard link to nothing": ([("h", "hard", "missing")], "'missing' does not name an earlier file"),
    "device file": ([("dev", "chr", None)], "member 'dev' is a device file"),
    "fifo": ([("pipe", "fifo", None)], "member 'pipe' is a fifo; refused"),
}


@pytest.mark.parametrize("case", sorted(TAR_ATTACKS))
def test_malicious_tar_is_refused_and_leaves_nothing(tmp_path, case):
    members, reason = TAR_ATTACKS[case]
    archive = make_tar(tmp_path / "bad.tar.gz", [("ok.txt", "file", "fine"), *members])
    target = tmp_path / "work" / "input"
    with pytest.raises(ArchiveError) as info:
        extract(archive, target)
    message = str(info.value)
    assert message.startswith("bad.tar.gz: ") and "\n" not in message
    assert reason in message and message.endswith("; refused")
    assert_clean(tmp_path, target)


ZIP_ATTACKS = {
    "absolute path": ([("/tmp/escaped", "file", "x")], "'/tmp/escaped' has an absolute path"),
    "dot-dot": ([("../escaped", "file", "x")], "'../escaped' contains '..'"),
    "backslash dot-dot": ([("..\\escaped", "file", "x")], "contains '..'"),
    "symlink outside": (
        [("evil", "sym", "../../escaped")],
        "'evil' -> '../../escaped' points outside",
    ),
    "device file": ([("dev", "chr", "")], "member 'dev' is a special file"),
}


@pytest.mark.parametrize("case", sorted(ZIP_ATTACKS))
def test_malicious_zip_is_refused_and_leaves_nothing(tmp_path, case):
    members, reason = ZIP_ATTACKS[case]
    archive = make_zip(tmp_path / "bad.zip", [("ok.txt", "file", "fine"), *members])
    target = tmp_path / "input"
    with pytest.raises(ArchiveError) as info:
        extract(archive, target)
    message = str(info.value)
    assert message.startswith("bad.zip: ") and "\n" not in message
    assert reason in message and message.endswith("; refused")
    assert_clean(tmp_path, target)


def test_tar_bomb_is_stopped_while_streaming(tmp_path):
    # 8 MiB of zeros compresses to a few KiB: only counting real bytes catches it.
    archive = make_tar(tmp_path / "bomb.tar.gz", [("zeros", "file", b"\0" * (8 << 20))])
    assert archive.stat().st_size < 100_000
    with pytest.raises(ArchiveError, match="more than 1048576 bytes"):
        extract(archive, tmp_path / "input", Limits(max_bytes=1 << 20))
    assert_clean(tmp_path, tmp_path / "input")


def test_zip_that_lies_about_its_size_is_stopped(tmp_path):
    archive = make_zip(tmp_path / "liar.zip", [("zeros", "file", b"\0" * (4 << 20))])
    # Rewrite the declared size in both headers to 10 bytes; the data stays 4 MiB.
    raw = bytearray(archive.read_bytes())
    central = raw.index(b"PK\x01\x02")
    for offset in (22, central + 24):  # uncompressed size: local header, central directory
        assert int.from_bytes(raw[offset : offset + 4], "little") == 4 << 20
        raw[offset : offset + 4] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    # Never more than the declared 10 bytes are read; the CRC then exposes the lie.
    with pytest.raises(ArchiveError, match=r"liar\.zip"):
        extract(archive, tmp_path / "input", Limits(max_bytes=1 << 20))
    assert_clean(tmp_path, tmp_path / "input")


def test_too_many_files_is_refused(tmp_path):
    members = [(f"f{i}", "file", "x") for i in range(50)]
    for maker, name in ((make_tar, "many.tar.gz"), (make_zip, "many.zip")):
        archive = maker(tmp_path / name, members)
        with pytest.raises(ArchiveError, match="more than 20 files"):
            extract(archive, tmp_path / "input", Limits(max_files=20))
        assert_clean(tmp_path, tmp_path / "input")


def test_truncated_archives_are_damaged_not_half_extracted(tmp_path):
    good = make_tar(tmp_path / "g.tar.gz", [("a", "file", os.urandom(300_000))])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[:150_000])
    with pytest.raises(DamagedArchive, match=r"cut\.tar\.gz is damaged"):
        extract(cut, tmp_path / "input")
    assert_clean(tmp_path, tmp_path / "input")
    zgood = make_zip(tmp_path / "g.zip", [("a", "file", os.urandom(300_000))])
    zcut = tmp_path / "cut.zip"
    zcut.write_bytes(zgood.read_bytes()[:150_000])
    with pytest.raises(DamagedArchive):
        extract(zcut, tmp_path / "input")
    assert_clean(tmp_path, tmp_path / "input")


def model_tree_tar(path: Path) -> Path:
    """Several small text files under one root, like a model's source (plain tar)."""
    files = [("model-abc", "dir", None)]
    for i in range(12):
        body = "".join(f"line {j} of file {i}: x = {j * i}\n" for j in range(400))
        files.append((f"model-abc/src/part{i}.py", "file", body))
    files.append(("model-abc/src/solve.py", "file", "print('solved')\n" * 50))
    return make_tar(path, files, gz=False)


def flushed_gzip(raw_tar: Path) -> tuple[bytes, list[int]]:
    """The tar gzipped with a full flush after every member, as streaming servers
    do, and the compressed offsets of those flushes: a cut there decompresses to
    exactly the members before it."""
    with tarfile.open(raw_tar) as tf:
        ends = [m.offset_data + ((m.size + 511) // 512) * 512 for m in tf.getmembers()]
    raw = raw_tar.read_bytes()
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    out, cuts, start = b"", [], 0
    for end in ends:
        out += packer.compress(raw[start:end]) + packer.flush(zlib.Z_FULL_FLUSH)
        cuts.append(len(out))
        start = end
    return out + packer.compress(raw[start:]) + packer.flush(), cuts


@pytest.mark.parametrize("where", ["between members", *range(5, 100, 5)])
def test_tar_gz_cut_anywhere_is_damaged_never_a_partial_tree(tmp_path, where):
    # A gzip stream cut where it decompresses to whole members used to extract
    # as a shorter tree without complaint.
    data, flushes = flushed_gzip(model_tree_tar(tmp_path / "good.tar"))
    cuts = flushes[:-1] if where == "between members" else [len(data) * int(where) // 100]
    for size in cuts:
        cut = tmp_path / "cut.tar.gz"
        cut.write_bytes(data[:size])
        with pytest.raises(DamagedArchive, match=r"cut\.tar\.gz is damaged or truncated"):
            extract(cut, tmp_path / "input", strip_single_root=True)
        assert_clean(tmp_path, tmp_path / "input")
    whole = tmp_path / "whole.tar.gz"
    whole.write_bytes(data)
    assert extract(whole, tmp_path / "input", strip_single_root=True) == 14
    assert (tmp_path / "input" / "src" / "solve.py").is_file()


def test_plain_tar_without_its_end_of_archive_blocks_is_damaged(tmp_path):
    good = model_tree_tar(tmp_path / "good.tar")
    with tarfile.open(good) as tf:
        last = tf.getmembers()[-1]
        end = last.offset_data + ((last.size + 511) // 512) * 512
    raw = good.read_bytes()
    assert raw[end : end + 1024] == bytes(1024)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(raw[:end])  # every member whole, the end-of-archive blocks missing
    with pytest.raises(DamagedArchive, match="end-of-archive"):
        extract(cut, tmp_path / "input")
    assert_clean(tmp_path, tmp_path / "input")
    whole = tmp_path / "whole.tar"
    whole.write_bytes(raw)
    assert extract(whole, tmp_path / "input") == 14


@pytest.mark.parametrize("percent", range(5, 100, 10))
def test_zip_cut_anywhere_is_damaged(tmp_path, percent):
    members = [(f"src/part{i}.py", "file", f"x = {i}\n" * 3000) for i in range(8)]
    data = make_zip(tmp_path / "good.zip", members).read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) * percent // 100])
    with pytest.raises(DamagedArchive):
        extract(cut, tmp_path / "input")
    assert_clean(tmp_path, tmp_path / "input")


def test_existing_target_is_refused_unless_replacing(tmp_path):
    archive = make_zip(tmp_path / "a.zip", [("new.txt", "file", "new")])
    target = tmp_path / "input"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(ArchiveError, match="already exists"):
        extract(archive, target)
    assert (target / "old.txt").exists()
    extract(archive, target, replace=True)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
