"""The FastAPI app: the page at ``/`` and its JSON API beside it.

    GET  /api/health          model, index summary, limits; ``ready`` false with ``problem`` when the index
                              is missing or stale
    POST /api/search          {"query": "...", "k": 10}      -> genes, one row per gene
    POST /api/predict         {"sequence": "ACGT... | >FASTA", "k": 5} -> per record: EC prediction, descriptions, genes
    GET  /api/fasta?gene=ID   the gene's DNA as a FASTA download
    GET  /api/map             2-D map of the indexed genes, coloured by EC class

Errors are JSON ``{"error": "..."}`` with a 4xx status (400 bad input, 404 no index / unknown gene,
409 stale index, 413 too large, 422 malformed parameters), never a 500 for anything a user can type.
The index is opened lazily and re-tried when its ``index.json`` changes, so building it while the app runs
needs no restart. Request bodies are read up to ``max_body_bytes`` and refused beyond. The model runs on
one dedicated thread (``app.state.model_executor``): requests queue for it instead of each worker thread
starting its own OpenMP team, which on a 2-core machine made a text query 2-10x slower (docs/app.md).
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from biotalk.app.index import META, MissingIndexError, StaleIndexError, open_index
from biotalk.app.page import PAGE
from biotalk.app.service import BadInput, GeneSearch, Limits, check_k, check_query, parse_dna
from biotalk.models.clip import BioTalkClipModel


@dataclass
class AppSettings:
    model_dir: Path
    index_dir: Path
    tau: float = -1.0  # < 0: the tau chosen on Valid, from metrics.json beside the model
    k: int = 10
    nprobe: int = 0  # IVF lists searched; 0: as built
    map_points: int = 5000
    check_source: bool = True
    limits: Limits = field(default_factory=Limits)


def resolve_tau(model_dir: Path, tau: float) -> tuple[float, str]:
    """(tau, where it came from): the setting, else the one train_clip chose on Valid (``metrics.json`` beside
    the model folder), else 0.5."""
    if tau >= 0:
        return tau, "config"
    metrics = Path(model_dir).parent / "metrics.json"
    if metrics.is_file():
        chosen = json.loads(metrics.read_text()).get("zero_shot_hierarchical", {}).get("tau", {})
        if "valid" in chosen:
            return float(chosen["valid"]), f"chosen on Valid ({metrics})"
    return 0.5, "default (no metrics.json beside the model)"


class IndexHolder:
    """The opened index and its searcher; opened on first use, re-opened when ``index.json`` changes."""

    def __init__(self, model: BioTalkClipModel, settings: AppSettings) -> None:
        self.model, self.settings = model, settings
        self.tau, self.tau_from = resolve_tau(settings.model_dir, settings.tau)
        self.search: GeneSearch | None = None
        self.problem: BadInput | None = None
        self.stamp: float | None = None
        self.lock = threading.Lock()

    def get(self) -> GeneSearch:
        meta = self.settings.index_dir / META
        stamp = meta.stat().st_mtime if meta.is_file() else None
        with self.lock:
            if stamp != self.stamp or (self.search is None and self.problem is None):
                self.stamp, self.search, self.problem = stamp, None, None
                try:
                    index = open_index(self.settings.index_dir, self.settings.model_dir, self.settings.nprobe,
                                       self.settings.check_source)
                    self.search = GeneSearch(self.model, index, self.tau, self.tau_from)
                except MissingIndexError as err:
                    self.problem = BadInput(str(err), 404)
                except StaleIndexError as err:
                    self.problem = BadInput(str(err), 409)
            if self.problem is not None:
                raise self.problem
            assert self.search is not None
            return self.search


async def read_json(request: Request, limit: int) -> dict:
    """The request's JSON object, read up to ``limit`` bytes (413 beyond, whatever Content-Length says)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadInput(f"request body is {int(declared):,} bytes; at most {limit:,}", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadInput(f"request body is over {limit:,} bytes", 413)
    try:
        data = json.loads(body)
    except ValueError:
        raise BadInput("request body is not JSON") from None
    if not isinstance(data, dict):
        raise BadInput("request body must be a JSON object")
    return data


def create_app(model: BioTalkClipModel, settings: AppSettings) -> FastAPI:
    """The app on a loaded model; the index is opened on first use (see ``IndexHolder``)."""
    app = FastAPI(title="BioTalk gene search", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json")
    holder = IndexHolder(model, settings)
    limits = settings.limits
    app.state.holder = holder
    app.state.model_executor = executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="biotalk-model")

    async def on_model_thread(fn):
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, err: BadInput) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, err: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return JSONResponse({"error": f"bad request parameters: {where}"}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/api/health")
    def health() -> dict:
        out = {"model": str(settings.model_dir), "index_dir": str(settings.index_dir), "limits": limits.to_dict(),
               "tau": holder.tau, "tau_from": holder.tau_from, "k": settings.k}
        try:
            meta = holder.get().index.meta
        except BadInput as err:
            return {**out, "ready": False, "problem": str(err)}
        summary = {key: meta.get(key) for key in ("n", "dim", "kind", "nlist", "nprobe", "candidates", "source")}
        return {**out, "ready": True, "problem": None, "index": summary}

    @app.post("/api/search")
    async def search(request: Request) -> dict:
        data = await read_json(request, limits.max_body_bytes)
        query, k = check_query(data.get("query"), limits), check_k(data.get("k"), limits, settings.k)
        return await on_model_thread(lambda: holder.get().text(query, k))

    @app.post("/api/predict")
    async def predict(request: Request) -> dict:
        data = await read_json(request, limits.max_body_bytes)
        records, k = parse_dna(data.get("sequence"), limits), check_k(data.get("k"), limits, 5)
        return await on_model_thread(lambda: holder.get().dna(records, k))

    @app.get("/api/fasta")
    def fasta(gene: str) -> Response:
        text = holder.get().fasta(gene)
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in gene)[:100] or "gene"
        return Response(text, media_type="text/x-fasta",
                        headers={"Content-Disposition": f'attachment; filename="{safe}.fasta"'})

    @app.get("/api/map")
    def gene_map(points: int = 0) -> dict:
        if points < 0:
            raise BadInput(f"points must be 0 (the default, {settings.map_points:,}) or more, got {points}")
        return holder.get().map(min(points or settings.map_points, settings.map_points))

    return app
