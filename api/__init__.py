"""FastAPI application: REST, live event stream, auth and roles."""
