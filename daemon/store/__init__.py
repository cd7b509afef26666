"""The defect store: coils, strip defects and coverage gaps kept in a database (issue 15).

- `schema`: the one schema, as numbered forward-only migrations applied at open;
- `batch`: `StoreBatch`, the rows of one write (and their JSON form, for the spool);
- `backend`: the `Store` protocol and `open_store(url)`, which picks the database by URL;
- `sqlite_store` / `postgres_store`: SQLite (the embedded default) and PostgreSQL (psycopg 3,
  the `defectd[postgres]` extra, imported only when a ``postgresql://`` URL is opened);
- `spool`: batches the database did not take, on disk until it answers again;
- `writer`: `StoreWriter`, the thread that owns the connection; the pipeline only hands it
  batches;
- `crops`: the JPEG crops of defects, beside the database, bounded in bytes.

Importing this package imports none of these; import the module you use.
"""
