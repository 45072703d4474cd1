"""Map and console tests (a package: its API+ingest stack fixture ends with its last test)."""
