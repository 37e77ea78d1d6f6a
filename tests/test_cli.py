from dataclasses import dataclass

import pytest

from biotalk.cli import UsageError, run
from biotalk.data.errors import InputError
from biotalk.ec import parse_ec


@dataclass
class Cfg:
    seed: int = 0
    query: str = ""


def _main(cfg: Cfg) -> None:
    if not cfg.query:
        raise UsageError("query: empty; give query=TEXT")
    if cfg.query == "missing":
        raise FileNotFoundError("data: no folder out/nothing")
    if cfg.query == "ec":
        parse_ec("1.2.x")
    if cfg.query == "lines":
        raise InputError("raw_dir: nothing usable\n  in data/raw")
    if cfg.query == "bug":
        raise RuntimeError("a bug keeps its traceback")


@pytest.mark.parametrize(("argv", "message"), [
    (["nokey=1"], "error: nokey: unknown key"),
    (["seed=abc"], "error: seed: expected an integer, got 'abc'"),
    (["--config", "nowhere.yaml"], "error: --config: file not found: nowhere.yaml"),
    (["--bogus"], "error: unrecognized arguments: --bogus"),
    ([], "error: query: empty; give query=TEXT"),
    (["query=missing"], "error: data: no folder out/nothing"),
    (["query=ec"], "error: not an EC number: '1.2.x'"),
    (["query=lines"], "error: raw_dir: nothing usable in data/raw"),
])
def test_run_exits_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        run(_main, Cfg, "doc", argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message) and captured.err.count("\n") == 1


def test_run_keeps_bugs_loud():
    with pytest.raises(RuntimeError, match="bug"):
        run(_main, Cfg, None, ["query=bug"])
    run(_main, Cfg, None, ["query=fine"])  # no exit when main succeeds


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        run(_main, Cfg, "Say what the script does.", ["--help"])
    assert exc.value.code == 0
    assert "Say what the script does." in capsys.readouterr().out
