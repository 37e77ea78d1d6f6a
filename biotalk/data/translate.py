"""A CDS's DNA and its checked translation: strand-aware extraction, the NCBI genetic code of the CDS
(/transl_table, default 11), /transl_except codons (selenocysteine, pyrrolysine, ...), and the
/translation the submitter gave, which must match. Anything else is a ``CdsError`` whose message is
the reject reason (``"category: detail"``).
"""

from __future__ import annotations

import re

from Bio.Data.CodonTable import TranslationError
from Bio.Seq import Seq, UndefinedSequenceError
from Bio.SeqFeature import SeqFeature
from Bio.SeqRecord import SeqRecord
from Bio.SeqUtils import IUPACData

DEFAULT_TRANSL_TABLE = 11
_TRANSL_EXCEPT = re.compile(r"pos:\s*(complement\()?\s*(\d+)(?:\.\.(\d+))?\)?\s*,\s*aa:\s*(\w+)")
_PLACEHOLDER_CODON = "ATG"  # a sense (and start) codon in every NCBI table; patched after translation


class CdsError(ValueError):
    """A CDS that cannot become a record; the message is the reject reason."""


def dna_and_protein(record: SeqRecord, feature: SeqFeature) -> tuple[str, str]:
    """The CDS's DNA (upper case, strand-aware) and its checked translation without the stop."""
    location = feature.location
    if "<" in str(location) or ">" in str(location):
        raise CdsError(f"partial CDS: {location}")
    try:
        dna = str(location.extract(record.seq)).upper()
    except UndefinedSequenceError:
        raise CdsError("no sequence: the record carries no DNA") from None
    except ValueError as err:
        raise CdsError(f"bad location: {err}") from None
    bad = sorted(set(dna) - set("ACGTN"))
    if bad:
        raise CdsError(f"non-ACGTN bases: {''.join(bad)}")
    if len(dna) % 3:
        raise CdsError(f"length not divisible by 3: {len(dna)} nt")
    q = feature.qualifiers
    try:
        table = int((q.get("transl_table") or [DEFAULT_TRANSL_TABLE])[0])
    except ValueError:
        raise CdsError(f"bad transl_table: {q['transl_table'][0]}") from None
    excepts = _transl_excepts(feature, len(dna))
    protein = _translate(dna, table, excepts)
    expected = (q.get("translation") or [""])[0].replace(" ", "")
    if expected and expected != protein:
        raise CdsError("translation mismatch: /translation differs from the translated DNA")
    return dna, protein


def _transl_excepts(feature: SeqFeature, length: int) -> list[tuple[int, str]]:
    """/transl_except as (offset of the codon in the CDS, one-letter amino acid)."""
    values = feature.qualifiers.get("transl_except", [])
    if not values:
        return []
    order = {pos: i for i, pos in enumerate(feature.location)}  # genome position -> CDS offset
    out = []
    for value in values:
        match = _TRANSL_EXCEPT.search(value)
        if not match:
            raise CdsError(f"bad transl_except: {value}")
        start, end, aa = int(match.group(2)), int(match.group(3) or match.group(2)), match.group(4)
        offsets = [order[p] for p in range(start - 1, end) if p in order]
        if not offsets or min(offsets) % 3:
            raise CdsError(f"bad transl_except: {value} is not a codon of the CDS")
        offset = min(offsets)
        if aa.upper() == "TERM" and offset == length - 3:
            continue  # the CDS's own stop codon
        letter = IUPACData.protein_letters_3to1_extended.get(aa.capitalize())
        if letter is None:
            raise CdsError(f"bad transl_except: unsupported amino acid {aa}")
        out.append((offset, letter))
    return out


def _translate(dna: str, table: int, excepts: list[tuple[int, str]]) -> str:
    """Translate with cds=True semantics; /transl_except codons are set to their amino acid."""
    for offset, _ in excepts:
        dna = dna[:offset] + _PLACEHOLDER_CODON + dna[offset + 3 :]
    try:
        protein = str(Seq(dna).translate(table=table, cds=True))
    except KeyError:
        raise CdsError(f"bad transl_table: {table}") from None
    except TranslationError as err:
        if "stop codon" in str(err) and "in frame" in str(err):
            raise CdsError(f"internal stop codon: {err}") from None
        raise CdsError(f"translation error: {err}") from None
    for offset, letter in excepts:
        i = offset // 3
        protein = protein[:i] + letter + protein[i + 1 :]
    return protein
