"""The dashboard's API and pages through FastAPI's test client, over a real results database
made by `rtcheck batch`: filters, sorting and paging done in SQL, records, the token, uploads
(zip slip, size limits, a broken file) and the OpenAPI description."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rtcheck.web.app import ServeSettings, create_app
from rtcheck.web.uploads import UploadLimits
from tests.web.conftest import HOSTILE_ID, plan_files


@pytest.fixture(scope="module")
def client(archive_db) -> TestClient:
    archive, db = archive_db
    return TestClient(create_app(ServeSettings(f"sqlite:///{db}")), base_url="http://127.0.0.1")


def test_plans_are_filtered_sorted_and_paged(client):
    everything = client.get("/api/plans").json()
    assert everything["total"] == 3
    decisions = sorted(p["decision"] for p in everything["plans"])
    assert decisions == ["excluded", "indeterminate", "not_excluded"]
    excluded = client.get("/api/plans", params={"decision": "excluded"}).json()
    assert [p["patient_id"] for p in excluded["plans"]] == [HOSTILE_ID]
    assert "SpinalCord" in excluded["plans"][0]["failed_mandatory"]
    by_patient = client.get("/api/plans", params={"sort": "patient_id", "desc": False}).json()
    ids = [p["patient_id"] for p in by_patient["plans"]]
    assert ids == sorted(ids)
    paged = [client.get("/api/plans", params={"size": 1, "page": n, "sort": "patient_id"}).json()
             for n in (1, 2, 3, 4)]  # fmt: skip
    assert [len(p["plans"]) for p in paged] == [1, 1, 1, 0]
    assert {p["plans"][0]["plan_key"] for p in paged[:3]} == {
        p["plan_key"] for p in everything["plans"]
    }
    # Search: a user's '%' and '_' match themselves, not any text.
    assert client.get("/api/plans", params={"q": "%_"}).json()["total"] == 1
    assert client.get("/api/plans", params={"q": "PHANTOM-00"}).json()["total"] == 2
    assert client.get("/api/plans", params={"q": "phantom-00"}).json()["total"] == 2  # any case
    assert client.get("/api/plans", params={"q": "nothing like it"}).json()["total"] == 0
    assert client.get("/api/plans", params={"sort": "evil; DROP"}).status_code == 422


def test_a_plan_its_record_and_history(client):
    key = client.get("/api/plans", params={"decision": "not_excluded"}).json()["plans"][0][
        "plan_key"
    ]
    plan = client.get(f"/api/plans/{key}").json()
    assert plan["plan"]["patient_id"] == "PHANTOM-001"
    assert [h["decision"] for h in plan["history"]] == ["not_excluded"]
    record = client.get(f"/api/plans/{key}/record").json()
    assert record["criterion_19"]["decision"] == "not_excluded"
    assert "PHANTOM^THORAX" not in json.dumps(plan) + json.dumps(record)  # no patient's name
    assert client.get("/api/plans/1.2.3.unknown/record").status_code == 404
    page = client.get(f"/plans/{key}")
    assert page.status_code == 200 and "not_excluded" in page.text
    report = client.get(f"/plans/{key}/report")
    assert report.status_code == 200 and '<figure class="dvh"' in report.text


def test_dicom_text_is_escaped_in_pages(client):
    page = client.get("/plans").text
    assert HOSTILE_ID not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    key = client.get("/api/plans", params={"decision": "excluded"}).json()["plans"][0]["plan_key"]
    assert HOSTILE_ID not in client.get(f"/plans/{key}").text


def test_the_openapi_description_lists_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/plans", "/api/plans/{key}/record", "/api/check"} <= set(paths)
    assert not any(p.startswith("/plans") for p in paths)  # pages are not API


def test_a_token_is_needed_when_set(archive_db):
    _, db = archive_db
    token = "t" * 32
    app = TestClient(
        create_app(ServeSettings(f"sqlite:///{db}", token=token)), base_url="http://127.0.0.1"
    )
    assert app.get("/api/plans").status_code == 401
    assert app.get("/plans").status_code == 401
    assert app.get("/api/plans", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert app.get("/api/plans", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    first = app.get(f"/plans?token={token}&decision=excluded", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/plans?decision=excluded"
    assert app.get("/plans").status_code == 200  # the cookie now carries it
    app.cookies.clear()
    elsewhere = app.get(f"http://127.0.0.1//evil.example/plans?token={token}",
                        follow_redirects=False)  # fmt: skip
    # Not a route (404), or a redirect that stays on this site.
    location = elsewhere.headers.get("location", "/")
    assert location.startswith("/") and "//" not in location
    # The API's description is behind the token too.
    assert app.get("/openapi.json").status_code == 401


def test_an_uploaded_plan_is_checked_and_nothing_is_kept(client, archive_db, tmp_path):
    archive, _ = archive_db
    before = set(Path("/tmp").glob("rtcheck-upload-*"))
    checked = client.post("/api/check", files=plan_files(archive / "p2"))
    assert checked.status_code == 200, checked.text
    assert checked.json()["criterion_19"]["decision"] == "excluded"
    assert set(Path("/tmp").glob("rtcheck-upload-*")) == before
    page = client.post("/check", files=plan_files(archive / "p1"))
    assert page.status_code == 200 and "NOT EXCLUDED" in page.text


def test_zip_entries_cannot_leave_the_temporary_folder(client, archive_db, tmp_path):
    archive, _ = archive_db
    buffer = io.BytesIO()
    escape = tmp_path / "escaped.dcm"
    with zipfile.ZipFile(buffer, "w") as z:
        for path in sorted((archive / "p1").glob("*.dcm")):
            z.write(path, f"../../../../{tmp_path.relative_to('/')}/{path.name}")
        z.writestr(str(escape), b"not dicom")
    checked = client.post("/api/check", files=[("files", ("plan.zip", buffer.getvalue()))])
    # The plan inside is checked (the entry that is not DICOM is passed over, as in a folder);
    # nothing was written where the entries' names pointed.
    assert checked.status_code == 200, checked.text
    assert checked.json()["criterion_19"]["decision"] == "not_excluded"
    assert not escape.exists() and not list(tmp_path.glob("*.dcm"))


def test_uploads_beyond_the_limits_are_refused(archive_db):
    archive, db = archive_db
    limits = UploadLimits(max_bytes=20_000)
    small = TestClient(
        create_app(ServeSettings(f"sqlite:///{db}", upload=limits)), base_url="http://127.0.0.1"
    )
    refused = small.post("/api/check", files=plan_files(archive / "p1"))
    assert refused.status_code == 413 and "larger than" in refused.json()["detail"]
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.dcm", b"\0" * 5_000_000)
    assert len(bomb.getvalue()) < 20_000
    refused = small.post("/api/check", files=[("files", ("b.zip", bomb.getvalue()))])
    assert refused.status_code == 400 and "expands to" in refused.json()["detail"]


def test_a_broken_file_gets_the_command_lines_message(client, tmp_path):
    (tmp_path / "x.dcm").write_bytes(b"not a DICOM file at all")
    cli = subprocess.run([sys.executable, "-m", "rtcheck.cli", "check", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    api = client.post("/api/check", files=[("files", ("x.dcm", b"not a DICOM file at all"))])
    assert api.status_code == 400
    said = cli.stderr.strip().removeprefix("rtcheck: error: ")
    # The same words, the file's temporary name aside.
    assert said.split(":")[-1].strip() == api.json()["detail"].split(":")[-1].strip()


def test_serve_refuses_another_address_without_a_token(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "serve", "--host", "0.0.0.0", "--db",
         str(tmp_path / "x.db")], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "needs --token-file" in done.stderr
    assert done.stderr.count("\n") == 1
    binary = tmp_path / "token.bin"
    binary.write_bytes(b"\xff\xfe" + b"\x00" * 20)
    binary.chmod(0o600)
    for token_file, said in ((binary, "not UTF-8 text"), (tmp_path, "Is a directory")):
        refused = subprocess.run(
            [sys.executable, "-m", "rtcheck.cli", "serve", "--token-file", str(token_file),
             "--db", str(tmp_path / "x.db")], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr
        assert refused.stderr.count("\n") == 1


def test_a_limit_across_the_archive(client):
    listing = client.get("/limits")
    assert listing.status_code == 200 and "SpinalCord" in listing.text
    detail = client.get("/limits/detail", params={"protocol": "eso-oligo-rt 1.1.0",
                                                  "structure": "SpinalCord",
                                                  "metric": "D0.03cc[Gy]"})  # fmt: skip
    assert detail.status_code == 200, detail.text
    assert detail.text.count("<svg") == 2  # the distribution and the failure rate
    nearest = detail.text.split('id="nearest"')[1]
    assert nearest.index("fail") < nearest.index("pass")  # the failing plan first
    assert HOSTILE_ID not in detail.text
    missing = client.get("/limits/detail", params={"protocol": "x", "structure": "y",
                                                   "metric": "z"})  # fmt: skip
    assert missing.status_code == 404


def test_what_if_over_the_archive(client, archive_db):
    """The cord limit made 15 Gy: PHANTOM-001 (cord about 17.5 Gy) becomes excluded; the
    excluded plan stays excluded; the indeterminate one (no cord) stays so. The stored protocol
    text comes back for editing, and a broken edit gets one line."""
    form = client.get("/whatif")
    assert form.status_code == 200 and "SpinalCord" in form.text
    text = client.get("/whatif", params={"protocol": "eso-oligo-rt 1.1.0"}).text
    import html as html_lib

    yaml = html_lib.unescape(text.split('id="text"')[1].split(">", 1)[1].split("</textarea>")[0])
    old = 'metric: "D0.03cc[Gy]", limit: "<= 45"'
    assert old in yaml
    edited = yaml.replace(old, 'metric: "D0.03cc[Gy]", limit: "<= 15"', 1)
    answer = client.post("/api/whatif", json={"protocol": "eso-oligo-rt 1.1.0", "yaml": edited})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["judged"] == 3 and result["needs_check"] == []
    assert [(p["patient_id"], p["before"], p["after"]) for p in result["changed"]] == [
        ("PHANTOM-001", "not_excluded", "excluded")
    ]
    assert any(c["label"] == "SpinalCord D0.03cc[Gy]" and c["limit_after"] == "<= 15"
               for c in result["changed"][0]["changes"])  # fmt: skip
    page = client.post("/whatif", data={"protocol": "eso-oligo-rt 1.1.0", "text": edited})
    assert page.status_code == 200 and "1 change decision" in page.text
    broken = client.post("/api/whatif", json={"protocol": "eso-oligo-rt 1.1.0",
                                              "yaml": "oar_limits: [oops"})  # fmt: skip
    assert broken.status_code == 422 and "\n" not in broken.json()["detail"]
    assert "rtcheck-whatif-" not in broken.json()["detail"]  # no temporary path
    unknown = client.post("/api/whatif", json={"protocol": "nope 1", "yaml": edited})
    assert unknown.status_code == 404
