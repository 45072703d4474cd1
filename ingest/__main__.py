"""`python -m ingest`: run the ingest worker (same as `gridwatch ingest`)."""

from ingest.worker import run_worker

run_worker()
