from dataclasses import dataclass, field
from pathlib import Path

import pytest

from biotalk.config import ConfigError, load_config, parse_args


@dataclass
class Optim:
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class Cfg:
    out: Path = Path("runs/x")
    seed: int = 0
    poolings: list[str] = field(default_factory=lambda: ["cls"])
    optim: Optim = field(default_factory=Optim)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\noptim:\n  lr: 1e-4\n")
    cfg = load_config(Cfg, path, ["optim.lr=2e-3", "poolings=cls,mean", "out=runs/y"])
    assert cfg.seed == 3
    assert cfg.optim.lr == pytest.approx(2e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.poolings == ["cls", "mean"]
    assert cfg.out == Path("runs/y")


def test_unknown_key_and_bad_number_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(Cfg, None, ["sede=1"])
    with pytest.raises(ConfigError, match="expected a number"):
        load_config(Cfg, None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(Cfg, tmp_path / "missing.yaml")


def test_cli_exits_with_one_line_message(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(Cfg, ["nokey=1"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
