"""Write the EMBL-CDS accessions of a UniProt build's entries, the ENA list of ``scripts/fetch_sources.py``.

    python scripts/cds_accessions.py --config configs/data/uniprot.yaml [accessions=FILE] [raw_dir=DIR]

Reads the ``uniprot.entries`` and ``uniprot.idmapping`` inputs of the build config (not the ENA FASTA it
is for); an entry's CDS ids come from its EMBL DR lines, or from idmapping column 18 for TSV entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from biotalk.cli import run
from biotalk.data.build import BuildConfig
from biotalk.data.sources import cds_accessions


@dataclass
class Config(BuildConfig):
    accessions: str = "ena.accessions"  # output, relative to raw_dir unless absolute


def main(cfg: Config) -> None:
    out = Path(cfg.accessions) if Path(cfg.accessions).is_absolute() else Path(cfg.raw_dir) / cfg.accessions
    print(f"wrote {cds_accessions(cfg.raw_dir, cfg.uniprot, out)} accessions to {out}")


if __name__ == "__main__":
    run(main, Config, __doc__)
