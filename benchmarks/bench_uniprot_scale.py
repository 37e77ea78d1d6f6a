"""The UniProt front end at scale: read (stage the dumps, join, resolve ECs) then ``stage_records``, the
bucketed path against the one that collected the whole record table (``old_ref``'s sources.py and
resolve_ecs), on synthetic dumps; records/s and peak RSS per stage, projected to 33 M records.

Inputs (``gen``): a UniProt TSV export of N Bacteria entries (the five required columns plus a 333-aa
sequence, protein name and organism; 4 % reviewed, 3 % with a second EC, 1 % sharing the previous entry's
CDS and EC: duplicate record ids), ``idmapping_selected.tab.gz`` (22 columns: UniRef ids by Zipf clusters,
EMBL-CDS ids, 5 % of entries with a second CDS, 1 % of entries absent, plus ``extra_idmap`` x N rows of
other accessions) and an ENA CDS FASTA of random 999-nt DNA (0.5 % with a non-ACGTN base, 0.5 % of ids
missing). ``entries=flat``: the same entries as a gzipped UniProtKB flat file (ID AC DT DE GN OS OC OX CC
DR PE KW FT SQ lines, 60-aa sequence lines; real TrEMBL entries hold more DR and FT lines) with ``no_ec`` of
its entries without an EC (not enzymes, as most of TrEMBL), spread among them. Every stage runs in a fresh
process (its peak RSS is its own: ``VmHWM``), watched by the parent,
which kills it above ``guard_gb``: ``read`` (records sunk to Parquet so the lazy plan is run whole),
``stage`` (``stage_records`` on that Parquet, the same for both paths), and ``front`` (read + stage in one
process, as ``build_benchmarks`` runs them: the old path holds the table while staging).

``workers`` sets ``uniprot.workers``; ``base`` names a folder holding another version's ``biotalk`` package
(``git archive <commit> biotalk | tar -x -C DIR``), which the stages then import instead of this tree's.

    nice -n 5 python benchmarks/bench_uniprot_scale.py sizes=[100000,1000000] [old=true] [guard_gb=14]
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import polars as pl

from biotalk.cli import run
from biotalk.data.build import BuildConfig, enzyme_inputs, scan_records
from biotalk.data.enzyme import load_enzyme
from biotalk.data.genbank import Reject
from biotalk.data.outofcore import stage_records
from biotalk.data.sources import UniProtInputs
from biotalk.rng import stream

ROOT = Path(__file__).resolve().parents[1]
FULL_SCALE = 33_000_000
CHUNK = 100_000
LINEAGE = "cellular organisms (no rank), Bacteria (domain), Pseudomonadota (phylum)"
ENTRIES = {False: "entries.tsv", True: "entries.dat.gz"}  # by flat


@dataclass
class UniProtScaleConfig:
    sizes: list[int] = field(default_factory=lambda: [100_000, 1_000_000])
    old: bool = True  # also run the collect-then-stage path of old_ref
    old_ref: str = "f76375a7589f0ef56eb7c2b0e7040a84feb9dd5b"  # the last commit before the bucketed front end
    buckets: int = 64
    stages: list[str] = field(default_factory=lambda: ["read", "stage", "front"])
    extra_idmap: float = 1.0  # idmapping rows of other accessions per entry (the real file is mostly those)
    entries: str = "tsv"  # tsv | flat: the entries file's format
    no_ec: float = 0.75  # flat files: share of entries without EC
    workers: int = 0  # uniprot.workers (0: one per CPU, at most 8)
    base: str = ""  # a folder with another version's biotalk package to time instead of this tree's
    guard_gb: float = 14.0  # a stage whose RSS passes this is killed and reported as such
    work: str = "/tmp/bench-uniprot-scale"
    seed: int = 0
    stage: str = ""  # internal: run one stage in this process and print JSON
    path: str = "new"  # internal: new | old
    n: int = 0  # internal: entries to generate


def _letters(rng: np.random.Generator, alphabet: bytes, n: int, length: int) -> pl.Series:
    codes = np.frombuffer(alphabet, dtype=np.uint8)[rng.integers(0, len(alphabet), (n, length), dtype=np.uint8)]
    return pl.Series(np.ascontiguousarray(codes).view(f"S{length}").ravel()).cast(pl.Utf8)


def _chunk(start: int, n: int, ecs: np.ndarray, seed: int, extra: float) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(entries, idmapping rows, CDS) of entries ``start .. start + n``, from a stream of their own."""
    rng = stream(seed, start)
    i = pl.Series(np.arange(start, start + n)).cast(pl.Utf8).str.zfill(9)
    ec = ecs[(rng.zipf(1.3, n) - 1) % len(ecs)]
    shared = rng.random(n) < 0.01  # this entry's CDS and EC are the previous entry's
    ec = np.where(shared & (np.arange(n) > 0), np.roll(ec, 1), ec)
    second = np.where(rng.random(n) < 0.03, ecs[rng.integers(0, len(ecs), n)], "")
    c50 = (rng.zipf(1.5, n) - 1) % 50_000
    c90, cds = c50 * 4 + rng.integers(0, 4, n), "C" + i
    cds = pl.Series(np.where(shared & (np.arange(n) > 0), np.roll(cds.to_numpy(), 1), cds.to_numpy()))
    entries = pl.DataFrame({"Entry": "A" + i, "Reviewed": np.where(rng.random(n) < 0.04, "reviewed", "unreviewed"),
                            "EC number": pl.Series(ec) + pl.Series(np.where(second != "", "; ", "")) + pl.Series(second),
                            "Taxonomic lineage": LINEAGE, "EMBL": "X" + i + ";",
                            "Sequence": _letters(rng, b"ACDEFGHIKLMNPQRSTVWY", n, 333),
                            "Protein names": "enzyme family " + pl.Series(c90).cast(pl.Utf8), "Organism": "Synthetic bacterium"})  # fmt: skip
    two = rng.random(n) < 0.05
    emblcds = cds + pl.Series(np.where(two, "; " + cds.to_numpy() + ".2", ""))
    mapped = pl.DataFrame({"AC": "A" + i, "U100": "UniRef100_" + i, "U90": "UniRef90_" + pl.Series(c90).cast(pl.Utf8),
                           "U50": "UniRef50_" + pl.Series(c50).cast(pl.Utf8), "EmblCds": emblcds}).filter(pl.Series(rng.random(n) >= 0.01))  # fmt: skip
    k, first = int(n * extra), int(start * extra)
    other = pl.DataFrame({"AC": "B" + pl.Series(np.arange(first, first + k)).cast(pl.Utf8),
                          "U100": "UniRef100_B", "U90": "UniRef90_B", "U50": "UniRef50_B", "EmblCds": "Z1"})  # fmt: skip
    ids = pl.concat([cds.filter(~pl.Series(shared)), (cds + ".2").filter(pl.Series(two))])
    dna = _letters(rng, b"ACGT", len(ids), 999)
    dna = pl.Series(np.where(rng.random(len(ids)) < 0.005, "X" + dna.to_numpy(), dna.to_numpy()))
    fasta = pl.DataFrame({"id": ids, "dna": dna}).filter(pl.Series(rng.random(len(ids)) >= 0.005))
    mapped = pl.concat([mapped, other]).sample(fraction=1.0, shuffle=True, seed=start)
    return entries.with_columns(pl.Series("_cds", emblcds)), mapped, fasta


def _flat_entry(ac: str, reviewed: bool, ecs: list[str], name: str, cds: list[str], embl: str, seq: str) -> str:  # fmt: skip
    """One UniProtKB flat-file entry (the lines Biopython reads; ``ecs`` empty: not an enzyme)."""
    de = "".join(f"DE            EC={ec} {{ECO:0000256|ARBA:ARBA00000001}};\n" for ec in ecs)
    dr = "".join(f"DR   EMBL; {embl}; {c}; -; Genomic_DNA.\n" for c in cds)
    lines = [seq[i : i + 60] for i in range(0, len(seq), 60)]
    rows = "".join("     " + " ".join(line[j : j + 10] for j in range(0, len(line), 10)) + "\n" for line in lines)
    cc = "".join(f"CC   -!- CATALYTIC ACTIVITY:\nCC         Reaction=A = B; EC={ec};\n" for ec in ecs)
    return (f"ID   {ac}_SYNTH {'Reviewed' if reviewed else 'Unreviewed'};{len(seq):>10} AA.\nAC   {ac};\n"
            "DT   01-JAN-2020, integrated into UniProtKB/TrEMBL.\nDT   01-JAN-2020, sequence version 1.\n"
            f"DT   01-JAN-2024, entry version 9.\nDE   SubName: Full={name} {{ECO:0000313|EMBL:{embl}}};\n{de}"
            "GN   ORFNames=SYN_0001 {ECO:0000313|EMBL:X};\nOS   Synthetic bacterium.\n"
            "OC   Bacteria; Pseudomonadota; Gammaproteobacteria.\nOX   NCBI_TaxID=1;\n"
            f"CC   -!- FUNCTION: Made up. {{ECO:0000256|ARBA:ARBA00000001}}.\n{cc}{dr}"
            f"DR   AlphaFoldDB; {ac}; -.\nDR   GO; GO:0005737; C:cytoplasm; IEA:UniProtKB-SubCell.\n"
            "DR   InterPro; IPR000001; Made_up.\nDR   Pfam; PF00001; Made_up; 1.\n"
            "PE   3: Inferred from homology;\nKW   Reference proteome {ECO:0000313|Proteomes:UP000000001}.\n"
            f"FT   CHAIN           1..{len(seq)}\nFT                   /evidence=\"ECO:0000256|ARBA:ARBA00000001\"\n"
            f"SQ   SEQUENCE   {len(seq)} AA;  36000 MW;  0123456789ABCDEF CRC64;\n{rows}//\n")  # fmt: skip


def _flat_text(entries: pl.DataFrame, no_ec: float, rng: np.random.Generator) -> str:
    """The chunk's entries as flat-file text, entries without EC (``no_ec`` of them) spread among them in a
    random order that keeps the enzymes' own order."""
    texts = [_flat_entry(r["Entry"], r["Reviewed"] == "reviewed", r["EC number"].split("; "), r["Protein names"],
                         r["_cds"].split("; "), r["EMBL"].rstrip(";"), r["Sequence"])
             for r in entries.iter_rows(named=True)]  # fmt: skip
    k = round(len(texts) * no_ec / (1 - no_ec))
    picked = entries.select("Entry", "EMBL", "Sequence")[rng.integers(0, entries.height, k)]
    others = (_flat_entry(f"N{ac}", False, [], "uncharacterized protein", [f"N{ac}.1"], embl.rstrip(";"), seq)
              for ac, embl, seq in picked.iter_rows())  # fmt: skip
    mask = rng.permutation(np.r_[np.ones(len(texts), bool), np.zeros(k, bool)])
    enzymes = iter(texts)
    return "".join(next(enzymes) if m else next(others) for m in mask)


def generate(raw: Path, n: int, cfg: UniProtScaleConfig) -> None:
    db = load_enzyme(*enzyme_inputs(BuildConfig(raw_dir=str(ROOT / "data" / "raw"))))
    ecs = np.asarray(db.active_ecs())
    raw.mkdir(parents=True)
    columns = {f"c{j}": pl.lit("") for j in range(22)} | {"c0": pl.col("AC"), "c7": pl.col("U100"), "c8": pl.col("U90"),
                                                          "c9": pl.col("U50"), "c17": pl.col("EmblCds")}  # fmt: skip
    flat = cfg.entries == "flat"
    with (gzip.open(raw / ENTRIES[True], "wt", compresslevel=1) if flat else open(raw / ENTRIES[False], "wb")) as out, \
            gzip.open(raw / "idmapping_selected.tab.gz", "wb", compresslevel=1) as idm, open(raw / "ena.fasta", "wb") as fasta:  # fmt: skip
        for start in range(0, n, CHUNK):
            entries, mapped, cds = _chunk(start, min(CHUNK, n - start), ecs, cfg.seed, cfg.extra_idmap)
            if flat:
                out.write(_flat_text(entries, cfg.no_ec, stream(cfg.seed, "flat", start)))
            else:
                entries = entries.drop("_cds")
                entries.write_csv(out, separator="\t", include_header=start == 0, quote_style="never")
            mapped.select(**columns).write_csv(idm, separator="\t", include_header=False, quote_style="never")
            fasta.write("".join((">ENA|" + cds["id"] + "|" + cds["id"] + " synthetic\n" + cds["dna"] + "\n").to_list()).encode())


def _old_front(ref: str, tmp: Path):
    """``old_ref``'s read_uniprot (its sources.py as a module) and resolve_ecs (its source, executed)."""
    (tmp / "old_sources.py").write_text(subprocess.run(["git", "show", f"{ref}:biotalk/data/sources.py"], cwd=ROOT,
                                                       capture_output=True, text=True, check=True).stdout)  # fmt: skip
    spec = importlib.util.spec_from_file_location("old_sources", tmp / "old_sources.py")
    module = sys.modules["old_sources"] = importlib.util.module_from_spec(spec)  # its dataclass looks itself up
    spec.loader.exec_module(module)
    build = subprocess.run(["git", "show", f"{ref}:biotalk/data/build.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    node = next(n for n in ast.parse(build).body if isinstance(n, ast.FunctionDef) and n.name == "resolve_ecs")
    space = {"pl": pl, "Reject": Reject}
    exec(compile("from __future__ import annotations\n" + ast.get_source_segment(build, node), "old_build", "exec"), space)
    return module.read_uniprot, space["resolve_ecs"]


def run_stage(cfg: UniProtScaleConfig, work: Path) -> dict:
    """One stage of one path in this process: seconds, records and peak RSS."""
    has_workers = "workers" in {f.name for f in fields(UniProtInputs)}  # not in a ``base`` that predates it
    workers = {"workers": cfg.workers} if has_workers else {}
    build = BuildConfig(source="uniprot", raw_dir=str(work / "raw"), uniprot=UniProtInputs(
        entries=[ENTRIES[cfg.entries == "flat"]], cds_fasta=["ena.fasta"], buckets=cfg.buckets, **workers))  # fmt: skip
    db = load_enzyme(*enzyme_inputs(BuildConfig(raw_dir=str(ROOT / "data" / "raw"))))
    base_gb = _peak_gb()
    front = work / f"{cfg.path}-records.parquet"
    times = {}
    with tempfile.TemporaryDirectory(prefix="front-", dir=work) as tmp:
        t = time.perf_counter()
        rejects = []
        if cfg.stage == "stage":
            records = pl.scan_parquet(front)
        elif cfg.path == "new":
            records, rejects = scan_records(build, db, Path(tmp))
        else:
            read_uniprot, resolve_ecs = _old_front(cfg.old_ref, Path(tmp))
            records, rejects = read_uniprot(build.raw_dir, build.uniprot)
            records, ec_rejects = resolve_ecs(records, db)
            records, rejects = records.lazy(), rejects + ec_rejects
        if cfg.stage == "read":
            records.sink_parquet(front)
        times["read_s"] = time.perf_counter() - t
        if cfg.stage in ("stage", "front"):
            t = time.perf_counter()
            store = stage_records(records, Path(tmp) / "store")
            times["stage_s"] = time.perf_counter() - t
            n = store.slim.height
        else:
            n = pl.scan_parquet(front).select(pl.len()).collect().item()
    return {"stage": cfg.stage, "path": cfg.path, "records": n, "rejects": len(rejects), **times, "base_gb": base_gb,
            "peak_gb": _peak_gb(), "load_1m": os.getloadavg()[0]}  # fmt: skip


def _peak_gb(pid: int | str = "self", field: str = "VmHWM") -> float:
    """Peak (``VmHWM``) or current (``VmRSS``) resident memory of a process. Not ``ru_maxrss``: Linux
    carries that over an ``execve`` from the parent's peak, so a fresh stage process would start at it."""
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field))
    except (FileNotFoundError, StopIteration):
        return 0.0
    return int(line.split()[1]) / 2**20


def _run(stage: str, path: str, n: int, work: Path, cfg: UniProtScaleConfig) -> dict:
    """One stage in a fresh process, killed when its RSS passes ``guard_gb``."""
    cmd = [sys.executable, __file__, f"stage={stage}", f"path={path}", f"work={work}", f"buckets={cfg.buckets}",
           f"old_ref={cfg.old_ref}", f"entries={cfg.entries}", f"workers={cfg.workers}"]  # fmt: skip
    env = os.environ | ({"PYTHONPATH": str(Path(cfg.base).resolve())} if cfg.base else {})
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
        while proc.poll() is None:
            if _peak_gb(proc.pid, "VmRSS") > cfg.guard_gb:
                proc.kill()
                proc.wait()
                return {"stage": stage, "path": path, "n": n, "killed_above_gb": cfg.guard_gb}
            time.sleep(0.2)
        out.seek(0)
        lines = out.read().strip().splitlines()
    if proc.returncode:
        raise RuntimeError(f"stage {stage} ({path}) failed with exit code {proc.returncode}")
    row = {"n": n} | json.loads(lines[-1])
    seconds = row.get("read_s", 0) * (stage != "stage") + row.get("stage_s", 0)
    scale = FULL_SCALE / row["records"]
    return row | {"rec_per_s": row["records"] / seconds, "s_at_33M": seconds * scale}


def _digest(path: Path) -> list[int]:
    """An order-free digest of a record table: per column, the sum of its values' hashes."""
    return pl.scan_parquet(path).select(pl.all().hash(seed=0).sum()).collect(engine="streaming").row(0)


def main(cfg: UniProtScaleConfig) -> None:
    if cfg.stage == "gen":
        generate(Path(cfg.work) / "raw", cfg.n, cfg)
        return
    if cfg.stage:
        print(json.dumps(run_stage(cfg, Path(cfg.work))))
        return
    print(json.dumps({"load_avg": os.getloadavg(), "cpus": os.cpu_count(), "buckets": cfg.buckets, "entries": cfg.entries,
                      "workers": cfg.workers, "code": cfg.base or "this tree"}), flush=True)  # fmt: skip
    for n in cfg.sizes:
        work = Path(cfg.work) / str(n)
        shutil.rmtree(work, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "stage=gen", f"n={n}", f"work={work}", f"seed={cfg.seed}",
                        f"extra_idmap={cfg.extra_idmap}", f"entries={cfg.entries}", f"no_ec={cfg.no_ec}"], check=True, cwd=ROOT)  # fmt: skip
        print(json.dumps({"n": n, "gen_s": round(time.perf_counter() - t, 1)}), flush=True)
        for path in ["new"] + (["old"] if cfg.old else []):
            for stage in cfg.stages:
                if stage == "stage" and path == "old":
                    continue  # the same stage_records on the same records as the new path
                row = _run(stage, path, n, work, cfg)
                print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        if cfg.old and (work / "old-records.parquet").is_file():
            print(json.dumps({"n": n, "same_records": _digest(work / "new-records.parquet") == _digest(work / "old-records.parquet")}))
        print(json.dumps({"load_avg": os.getloadavg()}), flush=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(main, UniProtScaleConfig, __doc__)
