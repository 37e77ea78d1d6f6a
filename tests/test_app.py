"""The gene index (scripts/index_genes.py) and the web app (scripts/app.py): API against independent
computations, stale and missing indexes, bad input as 4xx, and the page in a real headless Chromium.

Model: a saved BioTalk-CLIP with the real towers (k-mer spectrum, packaged MiniLM) and random heads, loaded
from disk by the same path the app uses; its answers are checked against the model's own vectors, not for
quality. Genes: Test-I and Test-II of the real mini benchmark; candidates: the ECs of those genes.
"""

import importlib.util
import re
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from fastapi.testclient import TestClient

from biotalk.app.index import StaleIndexError, open_index
from biotalk.app.service import CandidateHierarchy
from biotalk.app.sources import file_genes
from biotalk.app.web import AppSettings, create_app, resolve_tau
from biotalk.data.genbank import read_genbank_dir
from biotalk.hierarchy import decode_hierarchical, hierarchy_scores
from biotalk.models.clip import BioTalkClipModel, build_clip_model

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("index_genes", ROOT / "scripts" / "index_genes.py")
_script = sys.modules["index_genes"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_script)
IndexConfig, index_genes = _script.Config, _script.main  # the script's own main, in this process
EC_RE = re.compile(r"^\d+\.(\d+|-)\.(\d+|-)\.(n?\d+|-)$")


def saved_model(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    build_clip_model("kmer:3", projection_dim=16, dna_head="mlp", head_hidden=32).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, mini_benchmark) -> dict:
    root = tmp_path_factory.mktemp("app")
    model_dir = saved_model(root / "model", 0)
    cfg = IndexConfig(model=model_dir, out=root / "index", data=mini_benchmark, splits=["test1", "test2"],
                      candidates="genes", cache_dir=str(root / "cache"))
    index_genes(cfg)
    model = BioTalkClipModel.from_pretrained(model_dir)
    app = create_app(model, AppSettings(model_dir, cfg.out, tau=0.3))
    return {"root": root, "cfg": cfg, "model": model, "model_dir": model_dir, "client": TestClient(app),
            "index": open_index(cfg.out, model_dir)}


def test_rebuild_is_skipped_and_the_index_reloads_fast(built, capsys):
    stamp = (built["cfg"].out / "index.json").stat().st_mtime_ns
    index_genes(built["cfg"])
    assert "up to date" in capsys.readouterr().out
    assert (built["cfg"].out / "index.json").stat().st_mtime_ns == stamp
    start = time.perf_counter()
    index = open_index(built["cfg"].out, built["model_dir"])
    assert time.perf_counter() - start < 5  # ~0.4 s measured on the loaded 2-core machine (docs/app.md)
    genes = index.genes
    assert genes["GeneId"].n_unique() == len(genes) == index.index.ntotal == index.meta["n"]


def test_text_search_is_exact_and_lists_each_gene_once(built):
    query = "breaks down hydrogen peroxide into water and oxygen"
    hits = built["client"].post("/api/search", json={"query": query, "k": 7}).json()["genes"]
    genes = built["index"].genes
    vectors = built["model"].get_dna_features(genes["Sequence"].to_list()).numpy()
    scores = vectors @ built["model"].get_text_features([query]).numpy()[0]
    best = np.argsort(-scores, kind="stable")[:7]
    assert [h["gene_id"] for h in hits] == genes["GeneId"].gather(best).to_list()
    assert [h["score"] for h in hits] == pytest.approx(scores[best].tolist(), abs=1e-4)
    for hit in hits:
        row = genes.row(genes["GeneId"].to_list().index(hit["gene_id"]), named=True)
        assert [e["ec"] for e in hit["ecs"]] == row["ECs"] and hit["organism"] == row["Organism"]
        assert all(e["name"] for e in hit["ecs"])  # ENZYME names travel with the index


def test_fasta_download(built):
    genes, client = built["index"].genes, built["client"]
    gene = genes.row(0, named=True)
    resp = client.get("/api/fasta", params={"gene": gene["GeneId"]})
    assert resp.status_code == 200 and "attachment" in resp.headers["content-disposition"]
    head, *lines = resp.text.splitlines()
    assert head.startswith(f">{gene['GeneId']} ") and "".join(lines) == gene["Sequence"]
    assert max(len(line) for line in lines) == 60
    assert client.get("/api/fasta", params={"gene": "no-such-gene"}).status_code == 404


def test_dna_prediction_is_the_evaluations_hierarchical_decoding(built):
    index, model = built["index"], built["model"]
    seqs = index.genes["Sequence"].to_list()[:3]
    fasta = "".join(f">g{i} some header\n{s[:70].lower()}\n{s[70:]}\n" for i, s in enumerate(seqs))
    records = built["client"].post("/api/predict", json={"sequence": fasta, "k": 4}).json()["records"]
    assert [r["id"] for r in records] == ["g0", "g1", "g2"]
    sims = model.get_dna_features(seqs).numpy() @ index.candidate_vectors.T
    probs = torch.softmax(model.scale().item() * torch.from_numpy(sims), dim=1).numpy()
    preds, conf = decode_hierarchical(probs, index.candidates["EC"].to_list(), 0.3)
    for i, rec in enumerate(records):
        p = rec["prediction"]
        assert p["ec"] == preds[i] and p["tau"] == 0.3
        assert p["ec"] is None or p["confidence"] == pytest.approx(conf[i], abs=1e-4)
        path = [lv["node"] for lv in p["levels"]]
        assert all(EC_RE.match(n) for n in path) and len(path) == 4
        assert all(path[d + 1].startswith(path[d].split(".-")[0] + ".") for d in range(3))  # one chain
        if p["ec"]:
            assert p["ec"] in path and [lv["predicted"] for lv in p["levels"]].count(True) == path.index(p["ec"]) + 1
        top = np.argsort(-probs[i], kind="stable")[:4]
        assert [d["ec"] for d in rec["descriptions"]] == [index.candidates["EC"][int(j)] for j in top]
        assert len(rec["genes"]) == 4 and rec["genes"][0]["score"] >= rec["genes"][-1]["score"]
    bare = built["client"].post("/api/predict", json={"sequence": seqs[0].replace("T", "U")}).json()["records"]
    assert bare[0]["id"] == "query" and bare[0]["prediction"] == records[0]["prediction"]


def test_candidate_hierarchy_equals_hierarchy_scores(built):
    ecs = built["index"].candidates["EC"].to_list()
    probs = np.random.default_rng(0).dirichlet(np.full(len(ecs), 0.05), size=16)
    fast = CandidateHierarchy(ecs)
    masses = fast.masses(probs)
    nodes, best_p = fast.scores(masses)
    ref_nodes, ref_p = hierarchy_scores(probs, ecs)
    assert (nodes == ref_nodes).all() and np.array_equal(best_p, ref_p)
    for node, mass in fast.path(masses, 0, None):
        prefix = node.split(".-")[0]
        members = [i for i, ec in enumerate(ecs) if ec == prefix or ec.startswith(prefix + ".")]
        assert mass == pytest.approx(probs[0, members].sum())


@pytest.mark.parametrize("path, body, status, message", [
    ("/api/search", {"query": ""}, 400, "empty query"),
    ("/api/search", {"query": "   "}, 400, "empty query"),
    ("/api/search", {"query": "x" * 1001}, 413, "at most 1,000"),
    ("/api/search", {"query": "kinase", "k": 0}, 400, "k must be an integer from 1 to 50"),
    ("/api/search", {"query": "kinase", "k": "5"}, 400, "k must be"),
    ("/api/search", {"query": 5}, 400, "empty query"),
    ("/api/search", b"query=kinase", 400, "not JSON"),
    ("/api/search", [1, 2], 400, "JSON object"),
    ("/api/search", b"x" * 2_000_001, 413, "at most 2,000,000"),
    ("/api/predict", {"sequence": ""}, 400, "empty DNA input"),
    ("/api/predict", {"sequence": "MKTAYIAKQRQISFVKSHFSRQ"}, 400, "not DNA: F I Q"),
    ("/api/predict", {"sequence": ">a\nACGT\n>b\n"}, 400, "record 'b' has no sequence"),
    ("/api/predict", {"sequence": "".join(f">r{i}\nACGTACGT\n" for i in range(10_000))}, 413, "10,000 records"),
    ("/api/predict", {"sequence": "A" * 100_001}, 413, "at most 100,000"),
    ("/api/predict", {"sequence": "ACGT\n>b\nACGT"}, 400, "before the first FASTA header"),
])  # fmt: skip
def test_bad_input_is_a_clear_4xx(built, path, body, status, message):
    client = built["client"]
    resp = client.post(path, content=body) if isinstance(body, bytes) else client.post(path, json=body)
    assert resp.status_code == status and message in resp.json()["error"], resp.text


def test_bad_parameters_of_get_routes(built):
    client = built["client"]
    assert client.get("/api/fasta").status_code == 422 and "gene" in client.get("/api/fasta").json()["error"]
    assert client.get("/api/map", params={"points": -1}).status_code == 400
    full = client.get("/api/map").json()
    assert full["n"] == full["shown"] == len(built["index"].genes) and len(full["x"]) == full["n"]
    assert set(full["ec_class"]) <= set(full["classes"]) and full["classes"]["1"] == "Oxidoreductases"
    assert client.get("/api/map", params={"points": 10}).json()["shown"] == 10


def test_missing_and_stale_indexes_are_refused(built, tmp_path):
    empty = TestClient(create_app(built["model"], AppSettings(built["model_dir"], tmp_path / "none")))
    health = empty.get("/api/health").json()
    assert health["ready"] is False and "index_genes.py" in health["problem"]
    resp = empty.post("/api/search", json={"query": "kinase"})
    assert resp.status_code == 404 and "no gene index" in resp.json()["error"]
    assert empty.get("/").status_code == 200
    other_dir = saved_model(tmp_path / "other", 1)
    with pytest.raises(StaleIndexError, match="another model"):
        open_index(built["cfg"].out, other_dir)
    damaged = tmp_path / "damaged"
    shutil.copytree(built["cfg"].out, damaged)
    (damaged / "genes.parquet").write_bytes(b"not parquet")
    with pytest.raises(StaleIndexError, match="incomplete"):
        open_index(damaged, built["model_dir"])
    stale = TestClient(create_app(BioTalkClipModel.from_pretrained(other_dir), AppSettings(other_dir, built["cfg"].out)))
    resp = stale.post("/api/predict", json={"sequence": "ACGT"})
    assert resp.status_code == 409 and "rebuild it with" in resp.json()["error"]


def test_a_fasta_index_goes_stale_when_its_genes_change(built, tmp_path, capsys):
    genes = built["index"].genes.head(12)
    fasta = tmp_path / "genes.fasta"
    fasta.write_text("".join(f">{g} product EC {e[0]} [Some organism]\n{s}\n" if len(e) else f">{g}\n{s}\n"
                             for g, e, s in genes.select("GeneId", "ECs", "Sequence").iter_rows()))  # fmt: skip
    cfg = IndexConfig(**{**vars(built["cfg"]), "genes": fasta, "out": tmp_path / "index"})
    index_genes(cfg)
    index = open_index(cfg.out, built["model_dir"])
    assert index.genes["GeneId"].to_list() == genes["GeneId"].to_list()
    assert index.genes["ECs"].to_list() == [e[:1] for e in genes["ECs"].to_list()]
    assert set(index.genes["Organism"]) <= {"Some organism", ""}
    fasta.write_text(fasta.read_text().replace(">", ">x", 1))
    with pytest.raises(StaleIndexError, match="genes changed"):
        open_index(cfg.out, built["model_dir"])
    capsys.readouterr()
    index_genes(cfg)
    assert "up to date" not in capsys.readouterr().out
    assert open_index(cfg.out, built["model_dir"]).genes["GeneId"][0] == "x" + genes["GeneId"][0]


def test_genbank_genes_are_every_cds_with_or_without_ec():
    path = ROOT / "data/raw/genbank/Hepatoplasma_crinochetorum_Av_NZ_CP006932.1.gb.gz"
    genes = file_genes(path)
    records, _ = read_genbank_dir(path.parent, [path])
    with_ec = genes.filter(pl.col("ECs").list.len() > 0)
    assert set(records["Sequence"]) <= set(with_ec["Sequence"])  # every EC-bearing CDS the builder reads
    assert len(genes) > len(with_ec) > 0 and genes["Sequence"].str.starts_with("ATG").mean() > 0.8


def test_tau_comes_from_valid_or_is_labelled(built, tmp_path):
    assert resolve_tau(built["model_dir"], 0.4) == (0.4, "config")
    assert resolve_tau(built["model_dir"], -1)[0] == 0.5
    run = tmp_path / "run"
    shutil.copytree(built["model_dir"], run / "final")
    (run / "metrics.json").write_text('{"zero_shot_hierarchical": {"tau": {"valid": 0.2, "test2": 0.1}}}')
    tau, source = resolve_tau(run / "final", -1)
    assert tau == 0.2 and "Valid" in source


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_page_in_a_headless_browser(built, tmp_path):
    chromium, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.skip("Debian chromium and chromium-driver are not installed (.ci/run installs them)")
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    app = create_app(built["model"], AppSettings(built["model_dir"], built["cfg"].out, tau=0.0))  # always a full EC
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver_bin), options=options)
    try:
        while not server.started:
            time.sleep(0.05)
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 60)
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "genes indexed"))
        browser.find_element(By.ID, "query").send_keys("breaks down hydrogen peroxide")
        browser.find_element(By.ID, "search-button").click()
        rows = wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, "#genes .gene-row")))
        assert len(rows) == 10 and rows[0].text.startswith("1 ")
        browser.find_element(By.ID, "dna").send_keys(built["index"].genes["Sequence"][0])
        browser.find_element(By.ID, "predict-button").click()
        predicted = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".predicted-ec")))
        assert EC_RE.match(predicted.text), predicted.text
        drawn = browser.execute_script(
            "const d = document.getElementById('map').getContext('2d').getImageData(0, 0, 900, 460).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n;")
        assert drawn > 1000  # the map's points and the hit markers
        fasta = tmp_path / "two.fasta"
        fasta.write_text("".join(f">gene{i}\n{s}\n" for i, s in enumerate(built["index"].genes["Sequence"][:2])))
        browser.find_element(By.ID, "fasta-file").send_keys(str(fasta))
        wait.until(lambda b: b.find_element(By.ID, "dna").get_attribute("value").startswith(">gene0"))
        browser.find_element(By.ID, "predict-button").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".predicted-ec")) == 2)
        browser.find_element(By.ID, "dna").clear()
        browser.find_element(By.ID, "dna").send_keys("MKTAYIAKQR")
        browser.find_element(By.ID, "predict-button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "not DNA"))
    finally:
        browser.quit()
        server.should_exit = True
        thread.join(10)
