"""Audits through the API: run, fetch, choropleth, HTML and CSV downloads, roles and regions."""

from __future__ import annotations

import pytest

from tests.api.fixtures import COUNTY_A, VILLAGE_A1, VILLAGE_A2
from tests.support import wait_for


@pytest.fixture(scope="module")
def job(client, headers, places):
    r = client.post("/api/v1/audits", headers=headers["t-auditor"], json={"region": COUNTY_A})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    def done():
        body = client.get(f"/api/v1/audits/{job_id}", headers=headers["t-auditor"]).json()
        return body if body["status"] != "running" else None

    result = wait_for(done, 60, 0.2)
    assert result and result["status"] == "done", result
    return result


def test_audit_result_has_summary_failures_and_suggestions(job):
    rules = {r["rule"] for r in job["summary"]}
    assert "village_points" in rules or any("village" in r for r in rules)
    assert job["run_id"] and job["requested_by"] == "t-auditor"
    assert all(f["reason"] for f in job["failures"])
    assert job["suggestions"] is not None and "candidates" in job["suggestions"]


def test_choropleth_by_village(client, headers, job):
    fc = client.get(
        f"/api/v1/audits/{job['id']}/choropleth", headers=headers["t-auditor"], params={"level": 5}
    ).json()
    by_code = {f["id"]: f["properties"] for f in fc["features"]}
    assert {VILLAGE_A1, VILLAGE_A2} <= set(by_code)
    for props in by_code.values():
        assert props["pct"] is None or 0 <= props["pct"] <= 100
        assert props["passed"] <= props["units"]


def test_downloads(client, headers, job):
    html = client.get(f"/api/v1/audits/{job['id']}/report.html", headers=headers["t-auditor"])
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "<svg" in html.text and "http://" not in html.text.replace("http://www.w3.org", "")
    csv = client.get(f"/api/v1/audits/{job['id']}/report.csv", headers=headers["t-auditor"])
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert COUNTY_A in csv.text


def test_roles_and_regions(client, headers, job, places):
    assert (
        client.post(
            "/api/v1/audits", headers=headers["t-operator"], json={"region": COUNTY_A}
        ).status_code
        == 403
    )
    assert (
        client.get(f"/api/v1/audits/{job['id']}", headers=headers["t-installer"]).status_code == 403
    )
    r = client.post("/api/v1/audits", headers=headers["t-auditor"], json={"region": "369999000000"})
    assert r.status_code == 404
    r = client.post("/api/v1/audits", headers=headers["t-auditor"], json={"region": "12"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "region"
    assert client.get("/api/v1/audits/99999999", headers=headers["t-auditor"]).status_code == 404
    listed = client.get(
        "/api/v1/audits", headers=headers["t-operator"], params={"region": COUNTY_A}
    ).json()
    assert job["id"] in [j["id"] for j in listed["items"]]


def test_a_job_whose_runner_is_gone_is_reported_interrupted(client, headers, engine, places):
    """An API restart mid-audit left jobs 'running' forever; now a reader finds them failed,
    while a job whose runner still holds its lock stays running."""
    from sqlalchemy import text

    from api.audit_jobs import JOB_LOCK_NAMESPACE

    with engine.begin() as conn:
        orphan, alive, fresh = (
            conn.execute(
                text(
                    "INSERT INTO api_audit_jobs (region_code, requested_by, requested_at) "
                    "VALUES (:r, 't-auditor', now() - make_interval(secs => :age)) RETURNING id"
                ),
                {"r": COUNTY_A, "age": age},
            ).scalar_one()
            for age in (600, 600, 1)
        )
    runner = engine.connect()
    try:
        runner.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :id)"), {"ns": JOB_LOCK_NAMESPACE, "id": alive}
        )
        got = {
            j: client.get(f"/api/v1/audits/{j}", headers=headers["t-auditor"]).json()
            for j in (orphan, alive, fresh)
        }
    finally:
        runner.rollback()
        runner.close()
    assert got[orphan]["status"] == "failed" and "interrupted" in got[orphan]["error"]
    assert got[alive]["status"] == "running"
    assert got[fresh]["status"] == "running"  # within the start grace, its runner may be starting
