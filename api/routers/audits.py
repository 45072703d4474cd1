"""Audits: run, fetch, download (placeholder until the geo audit engine lands)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["audits"])
