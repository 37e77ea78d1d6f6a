"""Data for BioTalk-CLIP: (DNA, description, EC) pairs, a collator, EC-aware batch samplers and the
cache of frozen text-tower embeddings.

Texts are stored once per unique string (many genes share one EC's description), records point into
that table; a frozen text tower is then run once per unique text, not once per record per epoch.
Random DNA windows are a function of (seed, epoch, record), never of the process layout, so one process
with batch 2b and two processes with batch b see the same crops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from biotalk.cache import cached_array, digest_strings
from biotalk.data.errors import InputError
from biotalk.ec import InvalidEC, LabelMap, parse_ec
from biotalk.rng import stream


@dataclass
class ClipSplit:
    """One split: per-record sequence, EC, text index and EC class id (``LabelMap`` order of the split's
    ECs); ``texts`` holds each unique text once."""

    name: str
    record_ids: list[str]
    sequences: list[str]
    ecs: list[str]
    texts: list[str]
    text_idx: np.ndarray
    ec_idx: np.ndarray

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, keep: np.ndarray) -> ClipSplit:
        """The records ``keep`` (the text table stays whole, so text indices remain valid)."""
        return replace(
            self,
            record_ids=[self.record_ids[i] for i in keep],
            sequences=[self.sequences[i] for i in keep],
            ecs=[self.ecs[i] for i in keep],
            text_idx=self.text_idx[keep],
            ec_idx=self.ec_idx[keep],
        )

    @property
    def class_ecs(self) -> list[str]:
        """The EC of each class id of ``ec_idx`` (``LabelMap`` order)."""
        labels = LabelMap.from_ecs(self.ecs).id2label
        return [labels[i] for i in range(len(labels))]

    @property
    def text_ecs(self) -> list[str]:
        """The EC of each unique text (a masked description names one EC in our benchmarks)."""
        out = [""] * len(self.texts)
        for t, ec in zip(self.text_idx.tolist(), self.ecs, strict=True):
            out[t] = ec
        return out


def clip_split(rows, name: str, text_column: str = "DescriptionMasked") -> ClipSplit:
    """Validate and index a split (a ``datasets.Dataset`` or anything with column access).

    Bad records stop with one line naming the split and the RecordId: an empty sequence or text, an EC
    that is not a full EC number, or one text used for two ECs (it could not be a positive for both).
    """
    ids = [str(r) for r in rows["RecordId"]]
    seqs, raw_ecs, raw_texts = list(rows["Sequence"]), list(rows["EC"]), list(rows[text_column])
    ecs: list[str] = []
    for rid, seq, ec, text in zip(ids, seqs, raw_ecs, raw_texts, strict=True):
        if not seq:
            raise InputError(f"{name}: record {rid}: empty Sequence")
        if not text or not str(text).strip():
            raise InputError(f"{name}: record {rid}: empty {text_column}")
        try:
            parsed = parse_ec(ec)
        except InvalidEC as err:
            raise InputError(f"{name}: record {rid}: {err}") from None
        if not parsed.is_full:
            raise InputError(f"{name}: record {rid}: partial EC {ec!r}")
        ecs.append(str(parsed))
    texts, text_idx, text_ec = [], [], {}
    index: dict[str, int] = {}
    for rid, text, ec in zip(ids, raw_texts, ecs, strict=True):
        if text not in index:
            index[text] = len(texts)
            texts.append(text)
            text_ec[text] = ec
        elif text_ec[text] != ec:
            raise InputError(f"{name}: record {rid}: text shared by ECs {text_ec[text]} and {ec}")
        text_idx.append(index[text])
    return ClipSplit(
        name=name,
        record_ids=ids,
        sequences=[str(s) for s in seqs],
        ecs=ecs,
        texts=texts,
        text_idx=np.asarray(text_idx, dtype=np.int64),
        ec_idx=LabelMap.from_ecs(ecs).encode(ecs),
    )


def crop(sequence: str, window: int, rng: np.random.Generator | None) -> str:
    """A ``window``-nt slice: random start with ``rng``, else the gene start (deterministic evaluation)."""
    if window <= 0 or len(sequence) <= window:
        return sequence
    start = int(rng.integers(0, len(sequence) - window + 1)) if rng is not None else 0
    return sequence[start : start + window]


class ClipDataset(torch.utils.data.Dataset):
    """Items ``{"sequence", "text_idx", "ec_idx"}``; training crops are random per (seed, epoch, record)."""

    def __init__(self, split: ClipSplit, window_nt: int, random_crop: bool, seed: int = 0) -> None:
        self.split, self.window_nt, self.random_crop, self.seed, self.epoch = split, window_nt, random_crop, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> dict:
        rng = stream(self.seed, self.epoch, i) if self.random_crop else None
        return {
            "sequence": crop(self.split.sequences[i], self.window_nt, rng),
            "text_idx": int(self.split.text_idx[i]),
            "ec_idx": int(self.split.ec_idx[i]),
        }


class ClipCollator:
    """Tokenises DNA; attaches either cached text features (frozen text tower) or tokenised texts.
    ``text_features`` may be set after construction, before the first batch (``train_clip.py`` computes
    the table once the model is on its device)."""

    def __init__(
        self,
        dna_tokenize: Callable[[list[str]], dict],
        texts: Sequence[str],
        text_features: torch.Tensor | None = None,
        text_tokenize: Callable[[list[str]], dict] | None = None,
    ) -> None:
        if text_features is not None and text_tokenize is not None:
            raise ValueError("ClipCollator takes text_features or text_tokenize, not both")
        self.dna_tokenize, self.texts = dna_tokenize, texts
        self.text_features, self.text_tokenize = text_features, text_tokenize

    def __call__(self, items: list[dict]) -> dict:
        enc = self.dna_tokenize([it["sequence"] for it in items])
        text_idx = torch.tensor([it["text_idx"] for it in items])
        batch = {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "special_tokens_mask": enc["special_tokens_mask"],
            "labels": torch.tensor([it["ec_idx"] for it in items]),
        }
        if self.text_tokenize is not None:
            batch["text_inputs"] = dict(self.text_tokenize([self.texts[i] for i in text_idx.tolist()]))
        elif self.text_features is not None:
            batch["text_features"] = self.text_features[text_idx]
        else:
            raise ValueError("ClipCollator: set text_features (or give text_tokenize) before the first batch")
        return batch


def max_unique_batches(counts: np.ndarray, batch_size: int) -> int:
    """Largest m with sum_c min(count_c, m) >= m * batch_size: how many EC-unique batches fit."""
    lo, hi = 0, int(counts.sum()) // batch_size
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(counts, mid).sum() >= mid * batch_size:
            lo = mid
        else:
            hi = mid - 1
    return lo


class ClipBatchSampler(torch.utils.data.Sampler):
    """Seeded batches of record indices, reshuffled each epoch (``set_epoch``); always full batches.

    ``mode="soft"``: a random permutation cut into batches. ``"unique"``: at most one record per EC per
    batch. Then an epoch has m = ``max_unique_batches`` batches: each EC contributes min(count, m) random
    records, laid out EC after EC and dealt round-robin over the m batches (an EC's records are contiguous
    and at most m, so they land in m distinct batches); batches are trimmed to ``batch_size``. Records of ECs
    with more than m records, and the trimmed ones, wait for another epoch.
    ``"siblings"``: the same m EC-unique batches, built from sibling groups (``sibling_batches``): records of
    ECs that share the first three levels travel together, so each batch holds hard negatives that differ in
    the last EC level only (an epoch whose groups cannot fill every batch falls back to the unique layout).
    ``ec_labels`` (the EC string of each class id) is needed for that mode.
    """

    MODES = ("soft", "unique", "siblings")

    def __init__(self, ec_idx: np.ndarray, batch_size: int, seed: int, mode: str = "soft",
                 ec_labels: Sequence[str] | None = None) -> None:
        if mode not in self.MODES or (mode == "siblings" and ec_labels is None):
            raise ValueError(f"ClipBatchSampler: mode must be one of {self.MODES} (siblings with ec_labels), got {mode!r}")
        self.ec_idx, self.batch_size, self.seed, self.mode, self.epoch = ec_idx, batch_size, seed, mode, 0
        self.parents = [ec.rsplit(".", 1)[0] for ec in ec_labels] if ec_labels is not None else []
        counts = np.bincount(ec_idx)
        self.num_batches = max_unique_batches(counts, batch_size) if mode != "soft" else len(ec_idx) // batch_size
        if self.num_batches == 0:
            raise InputError(f"{len(ec_idx)} training records cannot fill one batch of {batch_size}: lower the batch size")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = stream(self.seed, self.epoch)
        m, b = self.num_batches, self.batch_size
        order = rng.permutation(len(self.ec_idx))
        if self.mode == "soft":
            yield from (order[i * b : (i + 1) * b].tolist() for i in range(m))
            return
        by_ec: dict[int, list[int]] = {}
        for i in order.tolist():
            by_ec.setdefault(int(self.ec_idx[i]), []).append(i)
        if self.mode == "siblings":
            batches = sibling_batches(by_ec, self.parents, m, b, rng)
            if batches is not None:  # else (groups too uneven to fill every batch) the unique layout below
                yield from batches
                return
        laid = [i for ec in rng.permutation(sorted(by_ec)).tolist() for i in by_ec[ec][:m]]
        batches = [laid[j::m] for j in range(m)]
        for j in rng.permutation(m).tolist():
            batch = batches[j]
            yield [batch[k] for k in rng.permutation(len(batch))[:b].tolist()]


def sibling_batches(by_ec: dict[int, list[int]], parents: Sequence[str], m: int, b: int,
                    rng: np.random.Generator) -> list[list[int]] | None:
    """m EC-unique batches of ``b`` made of sibling groups, or None when they cannot all be filled.

    ECs are gathered into families by parent (first three levels; at most b // 4 ECs a family, so no group
    crowds a batch); group k of a family is the k-th record of each of its ECs, one record per EC. A
    family's groups go to distinct batches (those with the fewest records so far, biggest family first, so
    batches come out even). Each batch keeps whole groups in random order up to ``b``; the records cut off
    top up any short batch with ECs it lacks."""
    cap, families = max(2, b // 4), {}
    for ec in rng.permutation(sorted(by_ec)).tolist():
        members = families.setdefault(parents[ec], [[]])
        if len(members[-1]) == cap:
            members.append([])
        members[-1].append(ec)
    units = [ecs for members in families.values() for ecs in members]
    groups: list[list[list[tuple[int, int]]]] = [[] for _ in range(m)]  # batch -> groups of (EC, record)
    sizes = np.zeros(m, dtype=np.int64)
    for ecs in sorted(units, key=lambda u: -sum(min(len(by_ec[ec]), m) for ec in u)):
        depth = min(m, max(len(by_ec[ec]) for ec in ecs))
        for k, j in enumerate(np.lexsort((rng.random(m), sizes))[:depth].tolist()):
            groups[j].append([(ec, by_ec[ec][k]) for ec in ecs if len(by_ec[ec]) > k])
            sizes[j] += len(groups[j][-1])
    batches = [[pair for k in rng.permutation(len(g)).tolist() for pair in g[k]] for g in groups]
    spare = [pair for batch in batches for pair in batch[b:]]
    for batch in batches:
        del batch[b:]
        have = {ec for ec, _ in batch}
        for n, (ec, i) in enumerate(spare):
            if len(batch) == b:
                break
            if ec not in have and i >= 0:
                batch.append((ec, i))
                have.add(ec)
                spare[n] = (ec, -1)  # used
    if any(len(batch) < b for batch in batches):
        return None
    return [[i for _, i in batches[j]] for j in rng.permutation(m).tolist()]


def cached_text_features(
    embed: Callable[[list[str]], torch.Tensor], texts: list[str], encoder_key: str, cache_dir: Path | None
) -> torch.Tensor:
    """Frozen text-tower embeddings of ``texts`` (rows in order), cached on disk by (encoder, texts)."""
    key = {"encoder": encoder_key, "texts": digest_strings(texts), "n": len(texts)}
    features = cached_array(cache_dir, "text_features", key, lambda: embed(texts).cpu().numpy(), (len(texts),))
    return torch.from_numpy(features)
