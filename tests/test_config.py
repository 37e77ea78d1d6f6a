from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from biotalk.config import ConfigError, load_config, to_dict


@dataclass
class Optim:
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: Literal["cosine", "linear"] = "cosine"


@dataclass
class Cfg:
    out: Path = Path("runs/x")
    seed: int = 0
    query: str = ""
    shuffle: bool = True
    window: int | None = None
    cache_dir: str | None = "cache"
    poolings: list[str] = field(default_factory=lambda: ["cls"])
    ks: list[int] = field(default_factory=lambda: [1, 3])
    optim: Optim = field(default_factory=Optim)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\noptim:\n  lr: 1e-4\n  schedule: linear\n")
    cfg = load_config(Cfg, path, ["optim.lr=2e-3", "poolings=cls,mean", "out=runs/y", "ks=[5]"])
    assert cfg.seed == 3
    assert cfg.optim.lr == pytest.approx(2e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.optim.schedule == "linear"
    assert cfg.poolings == ["cls", "mean"]
    assert cfg.ks == [5]
    assert cfg.out == Path("runs/y")


def test_overrides_are_read_by_field_type():
    cfg = load_config(Cfg, None, ["query=yes", "shuffle=no", "window=512", "cache_dir=null", "ks=1,5", "seed=7.0",
                                  "optim.betas=[0.8, 1]"])
    assert cfg.query == "yes"  # a str field keeps the text, not YAML's boolean
    assert cfg.shuffle is False and cfg.window == 512 and cfg.cache_dir is None
    assert cfg.ks == [1, 5] and cfg.seed == 7 and isinstance(cfg.seed, int)
    assert cfg.optim.betas == [0.8, 1.0] and isinstance(cfg.optim.betas[1], float)
    assert load_config(Cfg, None, ["query=007"]).query == "007"
    assert to_dict(load_config(Cfg, None, ["out=a/b"]))["out"] == "a/b"


@pytest.mark.parametrize(("override", "message"), [
    ("seed=abc", "seed: expected an integer, got 'abc'"),
    ("seed=1.5", "seed: expected an integer, got 1.5"),
    ("shuffle=maybe", "shuffle: expected true or false, got 'maybe'"),
    ("optim.lr=fast", "optim.lr: expected a number, got 'fast'"),
    ("optim.schedule=step", "optim.schedule: expected one of cosine, linear, got 'step'"),
    ("window=big", "window: expected an integer or null, got 'big'"),
    ("ks=1,x", r"ks\[1\]: expected an integer, got 'x'"),
    ("optim=3", "optim: expected a section with keys lr, betas, schedule, got 3"),
    ("sede=1", "sede: unknown key; did you mean seed\\?"),
    ("optim.betaz=1", "optim.betaz: unknown key; did you mean optim.betas\\?"),
    ("seed.x=1", "seed: expected an integer, got a section \\(x\\)"),
    ("ks=[1", "ks: cannot read '\\[1'"),
    ("seed", "seed: not a key=value override"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_config(Cfg, None, [override])


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="--config: file not found"):
        load_config(Cfg, tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(Cfg, tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("seed: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Cfg, tmp_path / "bad.yaml")
    (tmp_path / "typed.yaml").write_text("seed: '3'\nshuffle: 'yes'\n")
    with pytest.raises(ConfigError, match="shuffle: expected true or false"):
        load_config(Cfg, tmp_path / "typed.yaml")


@dataclass
class Needs:
    data: Path


def test_required_key():
    with pytest.raises(ConfigError, match="data: required"):
        load_config(Needs)
    assert load_config(Needs, None, ["data=x"]).data == Path("x")
