"""The MMseqs2 wrapper on the real binary: FASTA in, clusters and hits out, failures explained."""

import pytest

from biotalk import mmseqs

PROTEINS = {
    "a": "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWKAHS",
    "b": "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWSAHS",
    "c": "MSDNGPQNQRNAPRITFGGPSDSTGSNQNGERSGARSKQRRPQGLPNNTASWFTALTQHGKEDLKFPRGQGVPINTNSSPDDQIGYYRRATRRIRGGDGKMKDLSPRWYFYYLGTGPEAGLPYGANKDGIIWVATEGALNTPKDHIGTRNPANNAAIVLQLPQGTTLPKGFYAEGSRGGSQASSRSSSRSRNSSRNSTPGSSRGTSPARMAGNGGD",
}


def test_write_fasta_and_cluster(tmp_path):
    assert mmseqs.binary().is_file()
    mmseqs.write_fasta(tmp_path / "in.fasta", list(PROTEINS), list(PROTEINS.values()))
    assert (tmp_path / "in.fasta").read_text().splitlines()[:2] == [">a", PROTEINS["a"]]
    mmseqs.run(["easy-cluster", "in.fasta", "out", "tmp", "--min-seq-id", "0.9", "-c", "0.8"], tmp_path)
    pairs = [line.split("\t") for line in (tmp_path / "out_cluster.tsv").read_text().splitlines()]
    rep = {member: rep for rep, member in pairs}
    assert rep["a"] == rep["b"] != rep["c"]  # a and b differ in one residue, c is another protein


def test_search_finds_the_homologue(tmp_path):
    mmseqs.write_fasta(tmp_path / "q.fasta", ["q"], [PROTEINS["a"]])
    mmseqs.write_fasta(tmp_path / "t.fasta", ["b", "c"], [PROTEINS["b"], PROTEINS["c"]])
    mmseqs.run(["easy-search", "q.fasta", "t.fasta", "hits.m8", "tmp", "--format-output", "query,target"],
               tmp_path, threads=2)
    assert (tmp_path / "hits.m8").read_text().split() == ["q", "b"]


def test_a_failure_raises_with_mmseqs_own_message(tmp_path):
    with pytest.raises(RuntimeError, match="mmseqs easy-cluster failed"):
        mmseqs.run(["easy-cluster", "missing.fasta", "out", "tmp"], tmp_path)
    with pytest.raises(ValueError):
        mmseqs.write_fasta(tmp_path / "x.fasta", ["a", "b"], ["MK"])


def test_search_returns_input_indices_and_requested_columns():
    queries = [PROTEINS["c"], PROTEINS["a"] + "*"]  # a trailing stop is dropped before the search
    hits = mmseqs.search(queries, [PROTEINS["c"], PROTEINS["b"]], ["-e", 1e-3], ("fident", "evalue"))
    assert hits.columns == ["query", "target", "fident", "evalue"]
    best = {q: (t, f) for q, t, f in hits.sort("fident", descending=True).unique("query", keep="first")
            .select("query", "target", "fident").iter_rows()}
    assert best[0] == (0, 1.0)  # c finds itself
    assert best[1][0] == 1 and 0.99 < best[1][1] < 1.0  # a finds b, one residue apart
    assert mmseqs.search([], [PROTEINS["a"]], []).is_empty()
