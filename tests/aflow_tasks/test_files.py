from __future__ import annotations

import os
import re
import stat
import sys
import zipfile
from pathlib import Path

import anyio
import pytest

from aflow import Flow, Parameter, task
from aflow.states import Failed
from aflow_tasks.files import (
    COMPRESSION_METHODS,
    Copy,
    Glob,
    Move,
    ReadFile,
    Remove,
    Unzip,
    WriteFile,
    Zip,
)


def make_tree(root: Path) -> Path:
    """data/a.txt, data/sub/b.bin, data/empty/ under ``root``."""
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "empty").mkdir()
    (data / "a.txt").write_text("alpha")
    (data / "sub" / "b.bin").write_bytes(b"\x00\x01beta")
    return data


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root`` (relative posix path -> bytes, None for directories)."""
    return {p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


# -- init defaults, overrides, required values ------------------------------------------------


def test_init_defaults_are_stored():
    assert (Copy().source_path, Copy().target_path) == (None, None)
    assert (Move("a", "b").source_path, Move("a", "b").target_path) == ("a", "b")
    r = Remove()
    assert (r.path, r.missing_ok, r.recursive) == (None, False, False)
    g = Glob()
    assert (g.path, g.pattern) == (None, "*")
    z = Zip()
    assert (z.source_path, z.zip_path, z.compression_method, z.compression_level) == (None, None, "deflate", None)
    u = Unzip()
    assert (u.zip_path, u.extract_dir, u.password) == (None, None, None)
    rf = ReadFile()
    assert (rf.path, rf.mode, rf.encoding) == (None, "text", "utf-8")
    w = WriteFile()
    assert (w.path, w.data, w.mode, w.encoding, w.append, w.atomic) == (None, None, "text", "utf-8", False, True)
    assert WriteFile(name="save").name == "save"


def test_invalid_options_fail_at_init():
    with pytest.raises(ValueError, match="compression_method 'rar' is not supported"):
        Zip(compression_method="rar")
    with pytest.raises(ValueError, match="mode must be 'text' or 'bytes'"):
        ReadFile(mode="binary")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode must be 'text' or 'bytes'"):
        WriteFile(mode="b")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "arg"),
    [
        (lambda: Copy(target_path="x"), "source_path"),
        (lambda: Copy(source_path="x"), "target_path"),
        (lambda: Move(target_path="x"), "source_path"),
        (lambda: Move(source_path="x"), "target_path"),
        (Remove, "path"),
        (Glob, "path"),
        (lambda: Zip(zip_path="x.zip"), "source_path"),
        (lambda: Zip(source_path="x"), "zip_path"),
        (Unzip, "zip_path"),
        (ReadFile, "path"),
        (lambda: WriteFile(data="x"), "path"),
        (lambda: WriteFile(path="x"), "data"),
    ],
)
async def test_missing_required_value_is_a_clear_value_error(make, arg):
    t = make()
    with pytest.raises(
        ValueError, match=rf"{type(t).__name__} needs {arg}: give it to .*\({arg}=\.\.\.\) or to the call"
    ):
        await t.run()


async def test_call_values_win_over_init(tmp_path):
    (tmp_path / "init.txt").write_text("from init")
    (tmp_path / "call.txt").write_text("from call")
    reader = ReadFile(path=tmp_path / "init.txt")
    assert await reader.run() == "from init"
    assert await reader.run(path=tmp_path / "call.txt") == "from call"
    assert await reader.run(mode="bytes") == b"from init"

    writer = WriteFile(path=tmp_path / "w.txt", data="init data")
    await writer.run()
    assert (tmp_path / "w.txt").read_text() == "init data"
    await writer.run(data="call data", path=tmp_path / "w2.txt")
    assert (tmp_path / "w2.txt").read_text() == "call data"
    assert (tmp_path / "w.txt").read_text() == "init data"

    globber = Glob(path=tmp_path, pattern="*.txt")
    assert await globber.run(pattern="w*") == [tmp_path / "w.txt", tmp_path / "w2.txt"]


# -- Copy, Move, Remove, Glob ----------------------------------------------------------------


async def test_copy_file_and_directory(tmp_path):
    data = make_tree(tmp_path)
    out = await Copy(source_path=data / "a.txt", target_path=tmp_path / "copy.txt").run()
    assert out == tmp_path / "copy.txt"
    assert out.read_text() == "alpha"
    (tmp_path / "into").mkdir()
    assert await Copy().run(str(data / "a.txt"), str(tmp_path / "into")) == tmp_path / "into" / "a.txt"

    out = await Copy(source_path=data).run(target_path=tmp_path / "data2")
    assert out == tmp_path / "data2"
    assert tree(out) == tree(data)


async def test_copy_failures(tmp_path):
    with pytest.raises(ValueError, match=r"Copy: source_path .*nope.* not found"):
        await Copy(tmp_path / "nope", tmp_path / "x").run()
    data = make_tree(tmp_path)
    with pytest.raises(FileExistsError):  # copytree never merges into an existing directory
        await Copy(data, tmp_path).run()


async def test_move_file_and_directory(tmp_path):
    data = make_tree(tmp_path)
    before = tree(data)
    moved = await Move(source_path=data, target_path=tmp_path / "moved").run()
    assert moved == tmp_path / "moved"
    assert not data.exists()
    assert tree(moved) == before
    (tmp_path / "dest").mkdir()
    out = await Move().run(source_path=moved / "a.txt", target_path=tmp_path / "dest")
    assert out == tmp_path / "dest" / "a.txt"
    assert out.read_text() == "alpha"
    assert not (moved / "a.txt").exists()
    with pytest.raises(ValueError, match=r"Move: source_path .* not found"):
        await Move(moved / "a.txt", tmp_path / "z").run()


async def test_remove_file_directory_and_symlink(tmp_path):
    data = make_tree(tmp_path)
    await Remove(path=data / "a.txt").run()
    assert not (data / "a.txt").exists()
    await Remove().run(path=data / "empty")
    assert not (data / "empty").exists()

    link = tmp_path / "link"
    link.symlink_to(data, target_is_directory=True)
    await Remove(link, recursive=True).run()  # the link goes, never what it points to
    assert not link.is_symlink()
    assert (data / "sub" / "b.bin").exists()

    with pytest.raises(ValueError, match="is not empty; pass recursive=True"):
        await Remove(data).run()
    assert (data / "sub" / "b.bin").exists()
    await Remove(data).run(recursive=True)
    assert not data.exists()


async def test_remove_missing(tmp_path):
    with pytest.raises(ValueError, match=r"Remove: path .*gone.* not found .*missing_ok=True"):
        await Remove(tmp_path / "gone").run()
    await Remove(tmp_path / "gone", missing_ok=True).run()
    await Remove(tmp_path / "gone").run(missing_ok=True)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    await Remove(dangling).run()
    assert not dangling.is_symlink()


async def test_glob_sorted_and_recursive(tmp_path):
    for name in ["c.csv", "a.csv", "b.txt"]:
        (tmp_path / name).write_text(name)
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "d.csv").write_text("d")
    assert await Glob(path=tmp_path, pattern="*.csv").run() == [tmp_path / "a.csv", tmp_path / "c.csv"]
    assert await Glob(tmp_path).run() == [tmp_path / n for n in ["a.csv", "b.txt", "c.csv", "deep"]]
    assert await Glob(str(tmp_path), "**/*.csv").run() == [
        tmp_path / "a.csv",
        tmp_path / "c.csv",
        tmp_path / "deep" / "d.csv",
    ]
    assert await Glob(tmp_path, "*.none").run() == []
    with pytest.raises(ValueError, match=r"Glob: path .* is not an existing directory"):
        await Glob(tmp_path / "missing").run()


# -- ReadFile, WriteFile ---------------------------------------------------------------------


async def test_write_and_read_text_and_bytes(tmp_path):
    target = tmp_path / "t.txt"
    assert await WriteFile(path=target, data="héllo\n").run() == target
    assert target.read_bytes() == "héllo\n".encode()
    assert await ReadFile(target).run() == "héllo\n"
    await WriteFile(target, "more", append=True).run()
    assert await ReadFile(target).run() == "héllo\nmore"

    latin = tmp_path / "latin.txt"
    await WriteFile(latin, "é", encoding="latin-1").run()
    assert latin.read_bytes() == b"\xe9"
    assert await ReadFile(latin, encoding="latin-1").run() == "é"

    blob = tmp_path / "b.bin"
    await WriteFile(blob, b"\x00\xff", mode="bytes").run()
    await WriteFile(blob, bytearray(b"!"), mode="bytes", append=True, atomic=False).run()
    assert await ReadFile(blob, mode="bytes").run() == b"\x00\xff!"


async def test_write_data_must_fit_the_mode(tmp_path):
    with pytest.raises(TypeError, match="mode='text' needs str data, got bytes"):
        await WriteFile(tmp_path / "x", b"raw").run()
    with pytest.raises(TypeError, match="mode='bytes' needs bytes-like data, got str"):
        await WriteFile(tmp_path / "x", "text", mode="bytes").run()
    assert not (tmp_path / "x").exists()
    await WriteFile(tmp_path / "empty", "").run()  # empty data is data
    assert (tmp_path / "empty").read_text() == ""


async def test_read_failure(tmp_path):
    with pytest.raises(FileNotFoundError):
        await ReadFile(tmp_path / "missing.txt").run()
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(UnicodeDecodeError):
        await ReadFile(tmp_path / "bad.txt").run()


async def test_atomic_write_replaces_and_keeps_permissions(tmp_path):
    target = tmp_path / "conf.txt"
    target.write_text("old")
    target.chmod(0o640)
    inode = target.stat().st_ino
    await WriteFile(target, "new").run()
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != inode  # a new file was renamed over the old one
    await WriteFile(target, "+", append=True).run()
    assert target.read_text() == "new+"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.txt"]  # no temporary file left


async def test_atomic_write_new_file_gets_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    await WriteFile(tmp_path / "fresh.txt", "x").run()
    assert stat.S_IMODE((tmp_path / "fresh.txt").stat().st_mode) == 0o666 & ~umask


async def test_atomic_write_follows_a_symlink(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    assert await WriteFile(link, "new").run() == real
    assert link.is_symlink()
    assert real.read_text() == "new"


async def test_failed_atomic_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        await WriteFile(target, "naïve", encoding="ascii").run()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


async def test_non_atomic_write_in_place(tmp_path):
    target = tmp_path / "inplace.txt"
    target.write_text("old")
    inode = target.stat().st_ino
    await WriteFile(target, "new", atomic=False).run()
    assert target.read_text() == "new"
    assert target.stat().st_ino == inode


async def test_write_into_a_missing_directory_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        await WriteFile(tmp_path / "no" / "dir.txt", "x").run()


def test_missing_aiofiles_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiofiles", None)
    with pytest.raises(ImportError, match=r"files tasks need aiofiles: pip install aflow-engine\[files\]"):
        anyio.run(ReadFile("x").run)
    with pytest.raises(ImportError, match=r"files tasks need aiofiles: pip install aflow-engine\[files\]"):
        anyio.run(WriteFile("x", "y").run)


# -- Zip, Unzip ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(COMPRESSION_METHODS))
async def test_zip_and_unzip_a_directory_tree(tmp_path, method):
    data = make_tree(tmp_path)
    archive = await Zip(source_path=data, zip_path=tmp_path / "a.zip", compression_method=method).run()
    assert archive == tmp_path / "a.zip"
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["data/a.txt", "data/empty/", "data/sub/b.bin"]
        assert {i.compress_type for i in zf.infolist() if not i.is_dir()} == {COMPRESSION_METHODS[method]}
    out = await Unzip(zip_path=archive).run(extract_dir=tmp_path / "out" / "nested")
    assert out == tmp_path / "out" / "nested"
    assert tree(out / "data") == tree(data)


async def test_zip_a_file_and_a_list(tmp_path):
    data = make_tree(tmp_path)
    one = await Zip(data / "a.txt", tmp_path / "one.zip", compression_level=9).run()
    with zipfile.ZipFile(one) as zf:
        assert zf.namelist() == ["a.txt"]
        assert zf.read("a.txt") == b"alpha"
    both = await Zip(zip_path=tmp_path / "both.zip").run(source_path=[data / "a.txt", str(data / "sub")])
    with zipfile.ZipFile(both) as zf:
        assert sorted(zf.namelist()) == ["a.txt", "sub/b.bin"]
    # an existing archive is replaced
    await Zip(data / "sub", tmp_path / "one.zip").run()
    with zipfile.ZipFile(one) as zf:
        assert zf.namelist() == ["sub/b.bin"]


async def test_zip_inside_its_own_source_directory(tmp_path):
    data = make_tree(tmp_path)
    for _ in range(2):  # the second run must not put the first archive into the new one
        await Zip(data, data / "self.zip").run()
    with zipfile.ZipFile(data / "self.zip") as zf:
        assert sorted(zf.namelist()) == ["data/a.txt", "data/empty/", "data/sub/b.bin"]


async def test_zip_failures(tmp_path):
    data = make_tree(tmp_path)
    with pytest.raises(ValueError, match=r"Zip: source_path .*missing.* not found"):
        await Zip(tmp_path / "missing", tmp_path / "x.zip").run()
    with pytest.raises(ValueError, match="both be stored as 'a\\.txt'"):
        await Zip([data / "a.txt", data / "a.txt"], tmp_path / "x.zip").run()
    with pytest.raises(ValueError, match="compression_method 'zstd-ish' is not supported"):
        await Zip(data, tmp_path / "x.zip").run(compression_method="zstd-ish")
    with pytest.raises(ValueError, match="empty list"):
        await Zip([], tmp_path / "x.zip").run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no archive, no temporary file


async def test_unzip_failures(tmp_path):
    with pytest.raises(ValueError, match=r"Unzip: zip_path .*nope.zip.* not found"):
        await Unzip(tmp_path / "nope.zip", tmp_path / "out").run()
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="is not a zip file"):
        await Unzip(tmp_path / "fake.zip", tmp_path / "out").run()
    assert not (tmp_path / "out").exists()


async def test_unzip_defaults_to_the_working_directory(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("hello.txt", "hi")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert await Unzip(tmp_path / "a.zip").run() == work
    assert (work / "hello.txt").read_text() == "hi"


def malicious_zip(path: Path, bad_name: str) -> Path:
    """A zip with a harmless member first, then ``bad_name``."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("good.txt", "fine")
        zf.writestr(zipfile.ZipInfo(bad_name), "pwned")
    return path


def everything_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("bad_name", "reason"),
    [
        ("../evil.txt", "contains '..'"),
        ("sub/../../evil.txt", "contains '..'"),
        ("..\\evil.txt", "contains '..'"),
        ("ABSOLUTE", "is an absolute path"),
        ("C:/evil.txt", "is an absolute path"),
    ],
)
async def test_unzip_refuses_zip_slip_and_writes_nothing(tmp_path, bad_name, reason):
    box = tmp_path / "box"
    box.mkdir()
    if bad_name == "ABSOLUTE":
        bad_name = str(tmp_path / "abs-evil.txt")
    archive = malicious_zip(tmp_path / "evil.zip", bad_name)
    before = everything_under(tmp_path)
    dest = box / "extract"
    with pytest.raises(ValueError, match=re.escape(f"member {bad_name!r} {reason}; nothing was extracted")) as info:
        await Unzip(archive, dest).run()
    assert "evil.zip" in str(info.value)
    assert everything_under(tmp_path) == before  # not even good.txt, not even the extract folder
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "abs-evil.txt").exists()


async def test_unzip_refuses_a_symlink_member_pointing_outside(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good.txt", "fine")
        link = zipfile.ZipInfo("escape")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "../../etc")
    dest = tmp_path / "box" / "out"
    with pytest.raises(ValueError, match=r"member 'escape' is a symlink pointing outside the extract folder"):
        await Unzip(archive, dest).run()
    assert not (tmp_path / "box").exists()


async def test_unzip_keeps_a_symlink_member_pointing_inside_as_a_plain_file(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("dir/target.txt", "t")
        link = zipfile.ZipInfo("dir/alias")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "target.txt")
    out = await Unzip(archive, tmp_path / "out").run()
    alias = out / "dir" / "alias"
    assert not alias.is_symlink()
    assert alias.read_text() == "target.txt"


async def test_unzip_refuses_a_path_through_an_existing_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "door").symlink_to(outside, target_is_directory=True)
    with zipfile.ZipFile(tmp_path / "door.zip", "w") as zf:
        zf.writestr("door/evil.txt", "pwned")
    with pytest.raises(ValueError, match=r"member 'door/evil\.txt' would be written outside the extract folder"):
        await Unzip(tmp_path / "door.zip", dest).run()
    assert list(outside.iterdir()) == []


ENCRYPTED_ZIP = bytes.fromhex(  # `zip -P secret enc.zip hi.txt` (Info-ZIP): hi.txt holds "hi"
    "504b03040a000900000000002158ac2a93d80e000000020000000600000068692e7478740c33c97de55481fddd326c3ef526"
    "504b0708ac2a93d80e00000002000000504b01021e030a000900000000002158ac2a93d80e00000002000000060000000000"
    "000001000000a4810000000068692e747874504b0506000000000100010034000000420000000000"
)


async def test_unzip_with_a_password(tmp_path):
    (tmp_path / "enc.zip").write_bytes(ENCRYPTED_ZIP)
    with pytest.raises(RuntimeError, match="password required"):
        await Unzip(tmp_path / "enc.zip", tmp_path / "none").run()
    out = await Unzip(tmp_path / "enc.zip", tmp_path / "out", password="secret").run()
    assert (out / "hi.txt").read_text() == "hi"
    unzip = Unzip(tmp_path / "enc.zip", tmp_path / "out2", password=b"secret")
    assert (await unzip.run() / "hi.txt").read_text() == "hi"


# -- in a flow -------------------------------------------------------------------------------


async def test_flow_writes_zips_unzips_and_reads_back(tmp_path):
    @task
    async def shout(text: str) -> str:
        return text.upper()

    @task
    async def make_dir(path: Path) -> Path:
        await anyio.Path(path).mkdir()
        return path

    with Flow("files") as flow:
        text = Parameter("text")
        src = tmp_path / "src"
        folder = make_dir(src)
        written = WriteFile(path=src / "note.txt")(data=shout(text), upstream_tasks=[folder])
        archive = Zip(zip_path=tmp_path / "note.zip")(source_path=folder, upstream_tasks=[written])
        out = Unzip(extract_dir=tmp_path / "out")(zip_path=archive)
        found = Glob(pattern="**/*.txt")(path=out)
        back = ReadFile()(path=found[0])
    state = await flow.run(text="hello files")
    assert state.is_successful(), state.result
    assert state.result[written].result == src / "note.txt"
    assert state.result[archive].result == tmp_path / "note.zip"
    assert state.result[found].result == [tmp_path / "out" / "src" / "note.txt"]
    assert state.result[back].result == "HELLO FILES"


async def test_flow_unzip_of_a_malicious_archive_fails_the_task(tmp_path):
    archive = malicious_zip(tmp_path / "evil.zip", "../evil.txt")
    with Flow("evil") as flow:
        out = Unzip(extract_dir=tmp_path / "box" / "out")(zip_path=archive)
        after = ReadFile()(path=out)
    state = await flow.run()
    assert state.is_failed()
    failed = state.result[out]
    assert type(failed) is Failed
    assert isinstance(failed.result, ValueError)
    assert "'../evil.txt'" in str(failed.result)
    assert state.result[after].is_failed()  # TriggerFailed downstream
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "box").exists()
