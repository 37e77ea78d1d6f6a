"""CLIP training throughput (samples/s): frozen text tower cached vs run live, in one run; and with
``--candidates N`` the zero-shot candidate embedding (texts/s): N real ENZYME descriptions through the
frozen MiniLM in float32 vs under bf16 autocast (``text_embed_dtype``), in one run.

    python benchmarks/bench_clip.py [--dna DIR] [--steps N] [--batch B]
    accelerate launch --config_file configs/accelerate/cpu_two_process.yaml benchmarks/bench_clip.py
    python benchmarks/bench_clip.py --candidates 1000

Both variants train the same model (DNA tower + heads, MiniLM frozen) on the same synthetic batches of
126-nt windows and masked ENZYME-style texts; only the text side differs: a lookup into precomputed
sentence embeddings vs a MiniLM forward per batch. ``--batch`` is the global batch, split across processes;
run once per launcher and compare the printed samples/s for the process-count ratio.
"""

from __future__ import annotations

import biotalk  # noqa: F401  (first: sets the offline Hugging Face environment before any HF import)

# isort: split
import argparse
import time

import torch
from accelerate.utils import send_to_device

from biotalk.losses import ClipLoss
from biotalk.models.clip import build_clip_model
from biotalk.rng import stream
from biotalk.training import make_accelerator


def bench_candidates(n: int) -> None:
    """Texts/s of the first-run cost of zero-shot: embedding masked ENZYME descriptions (every n-th of the
    6,239 active ECs of the 2018 release), float32 vs bf16 autocast, same texts, same batches."""
    from biotalk.data.describe import describe_ec
    from biotalk.data.enzyme import load_enzyme

    raw = "data/raw/expasy_enzyme/"
    db = load_enzyme(raw + "enzyme_2018-09-12.dat.gz", [raw + "enzclass_2018-09-12.txt.gz"])
    ecs = db.active_ecs()
    texts = [describe_ec(ec, db, 0, masked=True) for ec in ecs[:: max(1, len(ecs) // n)]]
    model = build_clip_model("kmer:4", projection_dim=16)
    model.embed_texts(texts[:64])  # warm-up
    rates, out = {}, {}
    for dtype in ("float32", "bfloat16"):
        model.config.text_embed_dtype = dtype
        t0 = time.perf_counter()
        out[dtype] = model.embed_texts(texts)
        rates[dtype] = len(texts) / (time.perf_counter() - t0)
    cos = torch.nn.functional.cosine_similarity(out["float32"], out["bfloat16"]).min().item()
    print(f"{len(texts)} candidate descriptions, threads={torch.get_num_threads()}")
    for dtype, rate in rates.items():
        print(f"  {dtype:>8}: {rate:7.1f} texts/s  (all {len(ecs)}: {len(ecs) / rate:5.0f} s)")
    print(f"  bfloat16 / float32 = {rates['bfloat16'] / rates['float32']:.2f}x; min cosine between them {cos:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dna", default="models/lolbert-mini", help="DNA tower (load_dna_encoder path)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--candidates", type=int, default=0, help="> 0: benchmark candidate text embedding instead")
    args = parser.parse_args()
    if args.candidates:
        bench_candidates(args.candidates)
        return
    acc = make_accelerator(split_batches=True)
    torch.manual_seed(0)
    rng = stream(0)
    n = args.batch * (args.steps + args.warmup)
    seqs = ["".join(rng.choice(list("ACGT"), 126)) for _ in range(n)]
    texts = [f"Enzyme {i} catalyses the reaction of substrate {i % 97} with water; it belongs to the hydrolases "
             f"acting on ester bonds and needs a divalent metal cofactor." for i in range(n)]
    model = build_clip_model(args.dna, projection_dim=128, freeze_text=True)
    table = model.embed_texts(texts)
    loss_fn = ClipLoss()
    model, optimizer = acc.prepare(model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad]))
    inner = acc.unwrap_model(model)
    local = args.batch // acc.num_processes
    results = {}
    for variant in ("cached", "live"):
        elapsed = 0.0
        for step in range(args.warmup + args.steps):
            start = step * args.batch + acc.process_index * local
            idx = list(range(start, start + local))
            enc = inner.dna_encoder.tokenize([seqs[i] for i in idx])
            batch = {k: enc[k].to(acc.device) for k in ("input_ids", "attention_mask", "special_tokens_mask")}
            t0 = time.perf_counter()
            if variant == "cached":
                batch["text_features"] = table[idx].to(acc.device)
            else:
                batch["text_inputs"] = send_to_device(dict(inner.text_encoder.preprocess([texts[i] for i in idx])), acc.device)
            out = model(**batch)
            loss = loss_fn(out.dna_embeds, out.text_embeds, out.logit_scale, torch.tensor(idx, device=acc.device))
            acc.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            acc.wait_for_everyone()
            if step >= args.warmup:
                elapsed += time.perf_counter() - t0
        results[variant] = args.batch * args.steps / elapsed
    if acc.is_main_process:
        print(f"processes={acc.num_processes} batch={args.batch} steps={args.steps} dna={args.dna}")
        for variant, rate in results.items():
            print(f"  {variant:>6} text tower: {rate:8.1f} samples/s")
        print(f"  cached / live = {results['cached'] / results['live']:.2f}x")
    acc.end_training()


if __name__ == "__main__":
    main()
