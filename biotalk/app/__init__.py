"""The text-to-gene web app: a persisted gene index (``index``), the queries it answers (``service``), and
the FastAPI app with its page (``web``, ``page``). ``scripts/index_genes.py`` builds the index,
``scripts/app.py`` serves it (docs/app.md)."""
