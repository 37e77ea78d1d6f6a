"""The text-to-gene web app: find genes by what they do, or ask what a gene does, in a browser or over JSON.

    python scripts/index_genes.py --config configs/app/index_mini.yaml   # once: the gene index
    python scripts/app.py --config configs/app/mini.yaml                 # then open http://127.0.0.1:8000

Serves the page and its JSON API (docs/app.md) on ``host``:``port``, 127.0.0.1 by default: only this
machine can reach it. Passing every interface as ``host`` opens it to the network; the app has no login, so do that only on a
network you trust. A missing or stale index does not stop the app: the page and the API say what to run.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

from biotalk.cli import UsageError, run


@dataclass
class Config:
    model: Path = Path("runs/demo/clip/final")  # a BioTalkClipModel.save_pretrained directory
    index: Path = Path("runs/demo/gene_index")  # scripts/index_genes.py's out
    host: str = "127.0.0.1"
    port: int = 8000
    k: int = 10  # genes per text query unless the request says
    tau: float = -1.0  # hierarchical decoding threshold; < 0: the one chosen on Valid (metrics.json beside the model)
    nprobe: int = 0  # IVF lists searched; 0: as the index was built
    map_points: int = 5000  # genes drawn on the map at most (a seeded sample beyond)
    check_source: bool = True  # refuse an index whose source genes changed since it was built
    max_query_chars: int = 1_000
    max_sequence_nt: int = 100_000
    max_records: int = 100  # FASTA records per request
    max_body_bytes: int = 2_000_000
    max_k: int = 50
    log_level: str = "info"


def check(cfg: Config) -> None:
    """Every argument checked before anything loads: one line naming the bad one."""
    if not (cfg.model / "config.json").is_file() or not (cfg.model / "model.safetensors").is_file():
        raise UsageError(f"model: no trained BioTalk-CLIP in {cfg.model} (make demo writes one to runs/demo/clip/final)")
    if not 0 < cfg.port < 65536:
        raise UsageError(f"port: expected 1..65535, got {cfg.port}")
    for key in ("k", "map_points", "max_query_chars", "max_sequence_nt", "max_records", "max_body_bytes", "max_k"):
        if getattr(cfg, key) < 1:
            raise UsageError(f"{key}: must be at least 1, got {getattr(cfg, key)}")
    if cfg.k > cfg.max_k:
        raise UsageError(f"k: at most max_k={cfg.max_k}, got {cfg.k}")
    try:
        ipaddress.ip_address(cfg.host)
    except ValueError:
        if cfg.host != "localhost":
            raise UsageError(f"host: expected an IP address such as 127.0.0.1, got {cfg.host!r}") from None


def main(cfg: Config) -> None:
    check(cfg)
    import uvicorn

    from biotalk.app.service import BadInput, Limits
    from biotalk.app.web import AppSettings, create_app
    from biotalk.models.clip import BioTalkClipModel

    limits = Limits(cfg.max_query_chars, cfg.max_sequence_nt, cfg.max_records, cfg.max_body_bytes, cfg.max_k)
    settings = AppSettings(cfg.model, cfg.index, cfg.tau, cfg.k, cfg.nprobe, cfg.map_points, cfg.check_source, limits)
    app = create_app(BioTalkClipModel.from_pretrained(cfg.model), settings)
    try:
        app.state.holder.get()
    except BadInput as err:  # a missing or stale index: the app still starts and says the same on its page
        print(f"warning: {err}", file=sys.stderr)
    if not ipaddress.ip_address("127.0.0.1" if cfg.host == "localhost" else cfg.host).is_loopback:
        print(f"warning: serving on {cfg.host}: anyone who can reach this machine can use the app", file=sys.stderr)
    print(f"BioTalk gene search: open http://{cfg.host}:{cfg.port}/ (JSON API under /api, Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level, limit_concurrency=64)


if __name__ == "__main__":
    run(main, Config, __doc__)
