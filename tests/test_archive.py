"""Unpacking a remote archive trusts nothing in it: archives written here with `tarfile`
(and, for headers `tarfile` will not write, by hand), unpacked by the real unpacker into a
real folder beside a "site-packages" it must never touch."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import zstandard

from extensibility.remote.archive import UnsafeArchive, pack, unpack


def compressed(members: Sequence[tuple[tarfile.TarInfo, bytes | None]],
               fmt: int = tarfile.PAX_FORMAT) -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return io.BytesIO(zstandard.ZstdCompressor().compress(raw.getvalue()))


def folder(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def file(name: str, data: bytes = b"import os\n") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, data


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def deep(levels: int) -> list[tuple[tarfile.TarInfo, None]]:
    return [folder("/".join(f"d{i}" for i in range(n + 1))) for n in range(levels)]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """The image's site-packages, next to the environment: nothing may appear in it."""
    site = tmp_path / "image" / "site-packages"
    site.mkdir(parents=True)
    return site


def unpack_into(tmp_path: Path, archive: io.BytesIO) -> int:
    # the environment at tmp_path/cache/envs/env: three levels under tmp_path
    (tmp_path / "cache" / "envs").mkdir(parents=True, exist_ok=True)
    return unpack(archive, tmp_path / "cache" / "envs" / "env", max_files=100,
                  max_bytes=1 << 20)


def written_outside(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if "cache" not in p.relative_to(tmp_path).parts
            and p.is_file()]


# --- point 1: nothing is written outside, whatever the links ----------------------------

def test_a_hard_link_to_an_inside_link_cannot_lead_a_member_out(tmp_path: Path,
                                                                 outside: Path) -> None:
    # d0/d1/d2/l -> ../../.. lands on the root; a hard link to it at the root is
    # `top -> ../../..`, three levels out: top/image/site-packages/x.pth lands in the image
    members = [*deep(3), link("d0/d1/d2/l", "../../.."),
               link("top", "d0/d1/d2/l", tarfile.LNKTYPE), file("top/image/site-packages/x.pth")]
    with pytest.raises(UnsafeArchive, match=r"hard link .* not a file unpacked before it"):
        unpack_into(tmp_path, compressed(members))
    assert written_outside(tmp_path) == []


def test_a_link_through_another_link_is_refused(tmp_path: Path, outside: Path) -> None:
    # `up -> d0/l/..` reads as d0 (inside), but d0/l is a link to the root, so it is the
    # root's parent: a link may only climb, then go down
    members = [folder("d0"), link("d0/l", ".."), link("up", "d0/l/.."),
               file("up/image/site-packages/x.pth")]
    with pytest.raises(UnsafeArchive, match="outside the environment or through another link"):
        unpack_into(tmp_path, compressed(members))
    assert written_outside(tmp_path) == []


def test_no_member_is_written_through_any_link(tmp_path: Path, outside: Path) -> None:
    # an inside link (allowed) is never walked through: its target is not this member's folder
    members = [folder("lib"), link("lib64", "lib"), file("lib64/x.py")]
    with pytest.raises(UnsafeArchive, match="under the link 'lib64'"):
        unpack_into(tmp_path, compressed(members))


def test_a_hard_link_to_a_file_unpacked_before_it_works(tmp_path: Path) -> None:
    members = [folder("bin"), file("bin/tool", b"#!/bin/sh\n"),
               link("bin/same", "bin/tool", tarfile.LNKTYPE), link("bin/alias", "tool")]
    assert unpack_into(tmp_path, compressed(members)) == 4
    env = tmp_path / "cache" / "envs" / "env"
    assert os.path.samefile(env / "bin" / "same", env / "bin" / "tool")
    assert (env / "bin" / "alias").read_bytes() == b"#!/bin/sh\n"


# --- point 2: a malformed member is refused, not an OSError ----------------------------

@pytest.mark.parametrize("members, why", [
    ([file("missing/x.py")], "its folder 'missing' is not in the archive before it"),
    ([link("dangling", "nothing", tarfile.LNKTYPE)], "not a file unpacked before it"),
    ([file("a" * 300 + ".py")], "longer than 255 bytes"),
    ([folder("d"), file("d/" + "b" * 256)], "longer than 255 bytes"),
    ([file("x.py"), file("x.py")], "written twice"),
    ([file("x.py"), folder("x.py")], "a folder over something else"),
], ids=["no folder", "dangling hard link", "long name", "long part", "twice", "folder over"])
def test_a_malformed_member_is_refused_as_unsafe(members: list[tuple[tarfile.TarInfo, bytes]],
                                                  why: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchive, match=why):
        unpack_into(tmp_path, compressed(members))


# --- point 3: no header makes the unpacker's memory grow -------------------------------

DECLARED = 1 << 30  # what the header says, and what the archive then holds (zeros)
LIMIT = 600 << 20  # the unpacker's address space: well under what the header declares

_UNPACK_UNDER_A_LIMIT = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), int(sys.argv[3])))
from extensibility.remote.archive import UnsafeArchive, unpack
try:
    with open(sys.argv[1], "rb") as source:
        unpack(source, Path(sys.argv[2]), max_files=10, max_bytes=10)
except UnsafeArchive as exc:
    print("refused:", exc)
"""


def bomb(path: Path, kind: bytes) -> None:
    """A header of `kind` declaring DECLARED bytes, followed by that many zeros: about 33 KB
    of zstd."""
    header = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME
                             else "././@PaxHeader")
    header.type, header.size = kind, DECLARED
    with path.open("wb") as out, zstandard.ZstdCompressor(level=1).stream_writer(out) as z:
        z.write(header.tobuf(tarfile.USTAR_FORMAT if kind == tarfile.XHDTYPE
                             else tarfile.GNU_FORMAT))
        zeros = bytes(1 << 20)
        for _ in range(DECLARED >> 20):
            z.write(zeros)
        z.write(tarfile.TarInfo("x").tobuf())


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                                  tarfile.GNUTYPE_LONGLINK], ids=["pax", "long name",
                                                                  "long link"])
def test_a_huge_declared_header_is_refused_before_it_is_read(kind: bytes,
                                                              tmp_path: Path) -> None:
    archive = tmp_path / "bomb.tar.zst"
    bomb(archive, kind)
    assert archive.stat().st_size < 1 << 20
    done = subprocess.run([sys.executable, "-c", _UNPACK_UNDER_A_LIMIT, str(archive),
                           str(tmp_path / "env"), str(LIMIT)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: the archive is damaged: an extended header of 1073741824 bytes" \
        in done.stdout, done.stdout


def test_a_pax_record_of_a_huge_name_is_refused(tmp_path: Path) -> None:
    info, data = file("x" * 5000)  # pax path: within the header bound, over the name bound
    with pytest.raises(UnsafeArchive, match="a name of 5000 bytes"):
        unpack_into(tmp_path, compressed([(info, data)]))


# --- what pack writes still unpacks, long names, links and mtimes included ----------------

def test_pack_then_unpack_keeps_names_links_modes_and_mtimes(tmp_path: Path) -> None:
    root = tmp_path / "built"
    long = root / "lib" / ("p" * 120) / ("m" * 120 + ".py")
    long.parent.mkdir(parents=True)
    long.write_text("x = 1\n")
    os.utime(long, (1_600_000_000.25, 1_600_000_000.25))
    (root / "lib64").symlink_to("lib")
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "bin" / "tool").chmod(0o755)
    os.link(root / "bin" / "tool", root / "bin" / "tool2")
    (root / "bin" / "python").symlink_to(sys.executable)  # outside: listed, not archived
    handle = io.BytesIO()
    packed = pack(root, handle)
    handle.seek(0)
    target = tmp_path / "restored"
    assert unpack(handle, target, max_files=packed.files, max_bytes=packed.unpacked) == \
        packed.files
    restored = target / "lib" / ("p" * 120) / ("m" * 120 + ".py")
    assert restored.read_text() == "x = 1\n"
    assert os.stat(restored).st_mtime == 1_600_000_000.25
    assert os.readlink(target / "lib64") == "lib"
    assert os.access(target / "bin" / "tool2", os.X_OK)
    assert packed.external_links == {"bin/python": sys.executable}
