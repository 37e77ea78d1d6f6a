import gzip
import os
import stat

import pytest

from biotalk.io import atomic_dir, atomic_path, open_text, write_json


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_failed_dir_keeps_the_old_output(tmp_path):
    target = tmp_path / "bench"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("second")
            raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "first"
    assert sorted(os.listdir(tmp_path)) == ["bench"]


def test_outputs_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_open_text_reads_gzip_and_plain_alike(tmp_path):
    text = "LOCUS x\nline two é\n"
    (tmp_path / "plain.gb").write_text(text, encoding="utf-8")
    with gzip.open(tmp_path / "packed.gb.gz", "wt", encoding="utf-8") as handle:
        handle.write(text)
    (tmp_path / "packed.gb").write_bytes((tmp_path / "packed.gb.gz").read_bytes())  # gzip under a plain name
    for name in ("plain.gb", "packed.gb.gz", "packed.gb"):
        with open_text(tmp_path / name) as handle:
            assert handle.read() == text, name
    (tmp_path / "bad.txt").write_bytes(b"ok \xff end\n")
    with open_text(tmp_path / "bad.txt") as handle:
        assert handle.read() == "ok \ufffd end\n"  # undecodable bytes replaced, not fatal


def test_open_text_of_a_broken_gzip_fails_on_read(tmp_path):
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(OSError), open_text(tmp_path / "broken.gz") as handle:
        handle.read()
