"""Download the public sources of a full-scale BioTalk build, resumably (``biotalk.data.fetch``).

    python scripts/fetch_sources.py --config configs/data/sources.yaml [out=DIR] [only=[name,...]]
        [ena.accessions=FILE] [verify=true]

Each source goes to ``out/<file name of its url>`` through a ``.part`` file fetched on from its size
after a kill or a dropped connection (HTTP Range); connection errors and 5xx answers are retried with
exponential backoff. ``out/manifest.json`` records url, size, sha256 and date of each complete file; a file
that matches its record is skipped. With ``ena.accessions`` (one EMBL CDS id a line) the CDS sequences
come from the ENA browser API in batches of ``ena.batch_size`` into ``out/ena/``; batches on disk are
skipped, and the accessions ENA did not return are listed in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from biotalk.cli import UsageError, run
from biotalk.data.fetch import MANIFEST, Retry, Source, fetch_ena, fetch_files
from biotalk.io import open_text, write_json


@dataclass
class EnaConfig:
    accessions: Path | None = None  # one EMBL CDS accession a line (# comments allowed); none: no ENA step
    batch_size: int = 200
    url: str = "https://www.ebi.ac.uk/ena/browser/api/fasta/"


@dataclass
class Config:
    out: Path = Path("data/uniprot")  # configs/data/uniprot.yaml's raw_dir
    sources: dict[str, Source] = field(default_factory=dict)  # name -> url, file (default: the url's), sha256
    only: list[str] = field(default_factory=list)  # source names to fetch; empty: every source
    ena: EnaConfig = field(default_factory=EnaConfig)
    attempts: int = 6  # tries per file or ENA batch
    backoff: float = 2.0  # seconds before the first retry, doubled for each next one
    timeout: float = 60.0
    verify: bool = False  # re-hash complete files instead of trusting url and size in the manifest
    progress: bool = True


def read_accessions(path: Path) -> list[str]:
    with open_text(path) as handle:
        return [line.split("#", 1)[0].strip() for line in handle if line.split("#", 1)[0].strip()]


def main(cfg: Config) -> None:
    unknown = [name for name in cfg.only if name not in cfg.sources]
    if unknown:
        raise UsageError(f"only: unknown source {unknown[0]!r}; the config has {', '.join(cfg.sources)}")
    if cfg.ena.accessions is not None and not cfg.ena.accessions.is_file():
        raise FileNotFoundError(f"ena.accessions: file not found: {cfg.ena.accessions}")
    if cfg.attempts < 1 or cfg.ena.batch_size < 1:
        raise UsageError("attempts and ena.batch_size: expected at least 1")
    retry = Retry(cfg.attempts, cfg.backoff, cfg.timeout)
    chosen = {name: s for name, s in cfg.sources.items() if not cfg.only or name in cfg.only}
    manifest = fetch_files(chosen, cfg.out, retry, cfg.verify, cfg.progress)
    for name in chosen:
        print(f"{name}: {manifest['files'][name]['path']} {manifest['files'][name]['size']:,} bytes")
    if cfg.ena.accessions is not None:
        ena = fetch_ena(read_accessions(cfg.ena.accessions), cfg.out, cfg.ena.url, cfg.ena.batch_size, retry,
                        cfg.progress)
        manifest["ena"] = ena
        write_json(cfg.out / MANIFEST, manifest)
        shown = ", ".join(ena["missing"][:5]) + (" ..." if len(ena["missing"]) > 5 else "")
        print(f"ENA: {ena['accessions']} accessions in {ena['batches']} batches ({ena['fetched']} fetched now); "
              f"{len(ena['missing'])} not returned{': ' + shown if shown else ''}")
    print(f"manifest: {cfg.out / MANIFEST}")


if __name__ == "__main__":
    run(main, Config, __doc__)
