"""Safe extraction of zip and tar(.gz) archives.

Everything is written into a fresh temporary directory next to the target and
renamed into place in one step, so a refused or damaged archive leaves nothing
behind. Refused: absolute paths, `..`, links that leave the tree, writes through
links, devices and fifos, and more bytes or files than the limits allow (counted
while streaming, not trusted from headers). On request each file's sha256 is
computed from the bytes as they are written, so a manifest costs no second read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import ArchiveError, DamagedArchive, Stopped
from .limits import DEFAULT_LIMITS, Limits

CHUNK = 1 << 20


def detect_format(path: Path) -> str:
    """'zip' or 'tar' by content, not by name."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        return "zip"
    return "tar"


def extract(
    archive: Path,
    target: Path,
    limits: Limits = DEFAULT_LIMITS,
    strip_single_root: bool = False,
    replace: bool = False,
    label: str = "",
    digests: dict[str, tuple[int, str]] | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Extract `archive` into `target` (which must not exist unless `replace`).

    Returns the number of members extracted. With `strip_single_root`, an archive
    whose only top-level entry is a directory (GitLab's `project-sha/`) has that
    directory become `target`. ``label`` names the archive in messages (default:
    its file name). ``digests``, when given, is filled with (size, sha256) of
    every regular file by its path under ``target``, hashed while it was written.
    ``stop`` is asked before every member and every MiB written; when it says
    True, unpacking ends with Stopped and nothing is left behind.
    """
    archive, target = Path(archive), Path(target)
    if target.exists() and not replace:
        raise ArchiveError(f"{target} already exists; remove it first")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        writer = _Writer(tmp, label or archive.name, limits, hashing=digests is not None)
        writer.stop = stop
        if detect_format(archive) == "zip":
            _extract_zip(archive, writer)
        else:
            _extract_tar(archive, writer)
        writer.check_links()
        root, prefix = tmp, ""
        if strip_single_root:
            entries = list(tmp.iterdir())
            if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
                root, prefix = entries[0], entries[0].name + "/"
        if replace and target.exists():
            old = target.with_name(f".{target.name}.old.{os.getpid()}")
            os.rename(target, old)
            os.rename(root, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(root, target)
        if digests is not None:
            for rel, known in writer.digests.items():
                if rel.startswith(prefix):
                    digests[rel[len(prefix) :]] = known
        return writer.files
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _member_path(name: str, archive: str) -> str:
    """Normalise a member name to a relative path, refusing escapes."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise ArchiveError(f"{archive}: member {name!r} has an absolute path; refused")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{archive}: member {name!r} contains '..'; refused")
    return "/".join(parts)


class _Writer:
    """Creates files under `root`, enforcing the limits and never following links."""

    def __init__(self, root: Path, archive: str, limits: Limits, hashing: bool = False):
        self.root = root
        self.archive = archive
        self.limits = limits
        self.files = 0
        self.bytes = 0
        self.links: list[str] = []
        self.hashing = hashing
        self.digests: dict[str, tuple[int, str]] = {}  # rel -> (size, sha256) when hashing
        self.stop: Callable[[], bool] | None = None

    def check_stop(self) -> None:
        if self.stop is not None and self.stop():
            raise Stopped(f"{self.archive}: unpacking stopped by a signal")

    def count(self, files: int = 1) -> None:
        """Count `files` more members; refuse past the limit before any is written."""
        self.check_stop()
        if self.files + files > self.limits.max_files:
            raise ArchiveError(
                f"{self.archive}: more than {self.limits.max_files} files; refused "
                "(raise the file-count limit if this is expected)"
            )
        self.files += files

    def _parent(self, rel: str) -> str:
        """Create the parent directories of `rel`; refuse to pass through a link."""
        parts = rel.split("/")
        current = str(self.root)
        for part in parts[:-1]:
            current = os.path.join(current, part)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise ArchiveError(
                    f"{self.archive}: member {rel!r} would be written through "
                    f"{'a link' if stat.S_ISLNK(st.st_mode) else 'a file'}; refused"
                )
        return os.path.join(current, parts[-1])

    def directory(self, rel: str) -> None:
        if not rel:
            return
        path = self._parent(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o755)
            return
        if not stat.S_ISDIR(st.st_mode):
            raise ArchiveError(f"{self.archive}: directory {rel!r} clashes with a link/file")

    def regular(self, rel: str, source: IO[bytes], mode: int) -> None:
        path = self._parent(rel)
        if os.path.islink(path) or os.path.isdir(path):
            raise ArchiveError(f"{self.archive}: member {rel!r} replaces a link or directory")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o755 if mode & 0o111 else 0o644)
        digest = hashlib.sha256() if self.hashing else None
        size = 0
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                self.bytes += len(chunk)
                if self.bytes > self.limits.max_bytes:
                    raise ArchiveError(
                        f"{self.archive}: unpacks to more than {self.limits.max_bytes} bytes; "
                        "refused (raise the size limit if this is expected)"
                    )
                out.write(chunk)
                self.check_stop()
                if digest is not None:
                    digest.update(chunk)
        if digest is not None:
            self.digests[rel] = (size, digest.hexdigest())

    def symlink(self, rel: str, link_target: str) -> None:
        if not link_target or link_target.startswith("/"):
            raise ArchiveError(
                f"{self.archive}: link {rel!r} -> {link_target!r} is absolute; refused"
            )
        resolved = os.path.normpath(os.path.join(os.path.dirname(rel), link_target))
        if resolved == ".." or resolved.startswith("../"):
            raise ArchiveError(
                f"{self.archive}: link {rel!r} -> {link_target!r} points outside; refused"
            )
        path = self._parent(rel)
        if os.path.lexists(path):
            raise ArchiveError(f"{self.archive}: link {rel!r} replaces an existing member")
        os.symlink(link_target, path)
        self.links.append(rel)

    def hardlink(self, rel: str, existing: str) -> None:
        source = os.path.join(str(self.root), _member_path(existing, self.archive))
        if not existing or os.path.islink(source) or not os.path.isfile(source):
            raise ArchiveError(
                f"{self.archive}: hard link {rel!r} -> {existing!r} does not name an "
                "earlier file in the archive; refused"
            )
        path = self._parent(rel)
        if os.path.lexists(path):
            os.unlink(path)
        shutil.copyfile(source, path)  # a copy: no inode shared with anything else
        shutil.copymode(source, path)
        known = self.digests.get(_member_path(existing, self.archive))
        if known is not None:
            self.digests[rel] = known
        else:
            self.digests.pop(rel, None)

    def check_links(self) -> None:
        """Chains of relative links can still leave the tree; resolve each for real."""
        root = os.path.realpath(str(self.root))
        for rel in self.links:
            real = os.path.realpath(os.path.join(root, rel))
            if real != root and not real.startswith(root + os.sep):
                raise ArchiveError(f"{self.archive}: link {rel!r} resolves outside; refused")


def _extract_tar(archive: Path, w: _Writer) -> None:
    try:
        with open(archive, "rb") as raw:
            stream = _CheckedStream(raw, w.archive)
            with tarfile.open(fileobj=stream, mode="r|") as tf:  # type: ignore[call-overload]
                for member in tf:
                    _tar_member(tf, member, w)
                # Streaming tarfile stops quietly at the end of the data, so an
                # archive cut between members looks complete: demand the
                # end-of-archive block and the compressed stream's own end.
                stream.check_end(tf.offset)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise DamagedArchive(f"{w.archive} is damaged or truncated ({exc})") from None


def _tar_member(tf: tarfile.TarFile, member: tarfile.TarInfo, w: _Writer) -> None:
    w.count()
    rel = _member_path(member.name, w.archive)
    if member.isdir():
        w.directory(rel)
    elif member.isreg():
        if not rel:
            raise ArchiveError(f"{w.archive}: file member with an empty name")
        data = tf.extractfile(member)
        assert data is not None
        w.regular(rel, data, member.mode)
    elif member.issym():
        w.symlink(rel, member.linkname)
    elif member.islnk():
        w.hardlink(rel, member.linkname)
    else:
        # TarInfo.isdev() is true for fifos too: name them first.
        if member.isfifo():
            kind = "fifo"
        elif member.ischr() or member.isblk():
            kind = "device file"
        else:
            kind = "special file"
        raise ArchiveError(f"{w.archive}: member {member.name!r} is a {kind}; refused")


_BLOCK = tarfile.BLOCKSIZE
_WINDOW = 64 * 1024  # more than tarfile reads ahead (one 10 KiB record)


class _CheckedStream:
    """The decompressed bytes of a (gzip, bzip2, xz or plain) tar, for streaming
    tarfile, that insists on the compressed stream's end marker and keeps the
    last bytes it returned so the end-of-archive block can be checked. Output is
    made CHUNK by CHUNK, so a compression bomb never sits in memory."""

    MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))

    def __init__(self, raw: IO[bytes], name: str) -> None:
        self.raw, self.name = raw, name
        self.position = 0  # decompressed bytes handed out
        self.recent = bytearray()  # the last _WINDOW of them
        self._pending = bytearray()
        self._input = raw.read(6)
        self._kind = next((kind for magic, kind in self.MAGIC if self._input.startswith(magic)), "")
        self._decoder: Any = self._new_decoder() if self._kind else None

    def _new_decoder(self) -> Any:
        if self._kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self._kind == "bzip2":
            import bz2

            return bz2.BZ2Decompressor()
        import lzma

        return lzma.LZMADecompressor()

    def _more(self) -> bytes:
        """The next decompressed bytes; b"" only at a proper end of the stream."""
        if self._decoder is None:
            data, self._input = self._input or self.raw.read(CHUNK), b""
            return data
        while True:
            decoder = self._decoder
            if decoder.eof:
                rest = decoder.unused_data + self._input or self.raw.read(CHUNK)
                if not rest:
                    return b""
                decoder = self._decoder = self._new_decoder()  # gzip allows several members
                self._input = rest
            if not self._input and getattr(decoder, "needs_input", True):
                self._input = self.raw.read(CHUNK)
                if not self._input:
                    tail = decoder.flush() if self._kind == "gzip" else b""
                    if tail or decoder.eof:
                        return tail
                    raise DamagedArchive(
                        f"{self.name} is damaged or truncated "
                        f"(the {self._kind} stream ends before its end marker)"
                    )
            out = decoder.decompress(self._input, CHUNK)
            self._input = decoder.unconsumed_tail if self._kind == "gzip" else b""
            if out:
                return out

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            chunk = self._more()
            if not chunk:
                break
            self._pending += chunk
        cut = len(self._pending) if size < 0 else size
        data = bytes(self._pending[:cut])
        del self._pending[:cut]  # cheap: bytearray drops its head without copying
        self.position += len(data)
        self.recent += data
        del self.recent[:-_WINDOW]
        return data

    def check_end(self, offset: int) -> None:
        """Where tarfile stopped (``offset``) there must be a zero block, and the
        compressed stream must then end properly."""
        if self.position < offset + _BLOCK:
            self.read(offset + _BLOCK - self.position)
        start = offset - (self.position - len(self.recent))
        block = bytes(self.recent[start : start + _BLOCK]) if start >= 0 else b""
        if block != bytes(_BLOCK):
            raise DamagedArchive(
                f"{self.name} is damaged or truncated (no end-of-archive block after "
                "the last member)"
            )
        while self.read(CHUNK):
            pass  # the padding after it, up to the compressed stream's end marker


def _extract_zip(archive: Path, w: _Writer) -> None:
    try:
        with zipfile.ZipFile(str(archive)) as zf:
            infos = zf.infolist()
            w.count(len(infos))  # the central directory is read whole: check it at once
            declared = sum(i.file_size for i in infos)
            if declared > w.limits.max_bytes:
                raise ArchiveError(
                    f"{w.archive}: declares {declared} bytes, more than the limit "
                    f"{w.limits.max_bytes}; refused"
                )
            for info in infos:
                w.check_stop()
                rel = _member_path(info.filename, w.archive)
                mode = info.external_attr >> 16
                kind = stat.S_IFMT(mode)
                if info.is_dir() or kind == stat.S_IFDIR:
                    w.directory(rel)
                elif kind == stat.S_IFLNK:
                    target = zf.read(info)
                    if len(target) > 4096:
                        raise ArchiveError(f"{w.archive}: link {rel!r} has an oversized target")
                    w.symlink(rel, target.decode("utf-8", "replace"))
                elif kind in (0, stat.S_IFREG):
                    with zf.open(info) as data:
                        w.regular(rel, _Bounded(data, info.file_size, w.archive, rel), mode)  # type: ignore[arg-type]
                else:
                    raise ArchiveError(f"{w.archive}: member {rel!r} is a special file; refused")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise DamagedArchive(f"{w.archive} is damaged or unsupported ({exc})") from None


class _Bounded:
    """A zip member's stream that refuses to yield more than its declared size."""

    def __init__(self, raw: IO[bytes], declared: int, archive: str, rel: str):
        self.raw, self.left, self.archive, self.rel = raw, declared, archive, rel

    def read(self, n: int = -1) -> bytes:
        chunk = self.raw.read(n)
        self.left -= len(chunk)
        if self.left < 0:
            raise ArchiveError(f"{self.archive}: {self.rel!r} is larger than declared; refused")
        return chunk
