"""`rtcheck serve` against the attacks that reach a dashboard on loopback: DNS rebinding (a
foreign Host header), cross-site form posts, oversized and endless uploads, checks that would
hold up every other page, parameters that overflow, nesting that exhausts the stack, answers
that leak the server's paths, and a token file others can read. Through FastAPI's test client
where the application decides, and through a real server and raw sockets where the transport
matters."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rtcheck.web.app import ServeSettings, create_app
from rtcheck.web.guard import GuardSettings, host_of
from tests.web.conftest import Served, plan_files

LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def client(archive_db) -> TestClient:
    _, db = archive_db
    return TestClient(create_app(ServeSettings(f"sqlite:///{db}")), base_url=LOCAL)


# Host and origin ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "status"),
    [("127.0.0.1:8080", 200), ("localhost:8080", 200), ("[::1]:8080", 200),
     ("LOCALHOST", 200), ("attacker.example", 400), ("attacker.example:8080", 400),
     ("127.0.0.1.attacker.example", 400), ("", 400)],
)  # fmt: skip
def test_only_the_servers_own_host_names_are_answered(client, host, status):
    # A page on attacker.example that rebinds its name to 127.0.0.1 sends its own name.
    answer = client.get("/api/plans", headers={"Host": host})
    assert answer.status_code == status
    if status == 400:
        assert "host name" in answer.json()["detail"] and "plans" not in answer.json()


def test_allowed_hosts_are_the_bound_address_and_those_added():
    assert GuardSettings.hosts_for("0.0.0.0", ["qa.hospital.example"]) == {
        "0.0.0.0", "qa.hospital.example",
    }  # fmt: skip
    assert "localhost" in GuardSettings.hosts_for("127.0.0.1")
    assert host_of("[::1]:8080") == "::1" and host_of("Example.org:80") == "example.org"


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://attacker.example"}, {"Origin": "null"},
     {"Origin": "http://127.0.0.1:9999"}, {"Sec-Fetch-Site": "cross-site"},
     {"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1"}],
)  # fmt: skip
def test_a_cross_site_request_changes_nothing(client, archive_db, headers):
    archive, _ = archive_db
    for path, kwargs in (
        ("/check", {"files": plan_files(archive / "p1")}),
        ("/api/check", {"files": plan_files(archive / "p1")}),
        ("/whatif", {"data": {"protocol": "eso-oligo-rt 1.1.0", "text": "x"}}),
        ("/api/whatif", {"json": {"protocol": "eso-oligo-rt 1.1.0", "yaml": "x"}}),
    ):
        answer = client.post(path, headers=headers, **kwargs)  # type: ignore[arg-type]
        assert answer.status_code == 403, (path, answer.text)
        assert "cross-site" in answer.json()["detail"]


def test_the_dashboards_own_pages_and_clients_without_a_browser_may_post(client, archive_db):
    archive, _ = archive_db
    for headers in ({"Origin": LOCAL, "Sec-Fetch-Site": "same-origin"}, {"Origin": LOCAL}, {}):
        answer = client.post("/api/check", headers=headers, files=plan_files(archive / "p1"))
        assert answer.status_code == 200, answer.text


def test_every_answer_carries_the_security_headers(client):
    for answer in (client.get("/plans"), client.get("/api/plans"), client.get("/nowhere"),
                   client.get("/api/plans", headers={"Host": "attacker.example"})):  # fmt: skip
        csp = answer.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp  # no script at all
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
    for name in ("plans.html", "plan.html", "whatif.html", "check.html", "base.html"):
        template = Path(__file__).parents[2] / "src/rtcheck/web/templates" / name
        assert "<script" not in template.read_text()  # the policy would block it


def test_the_token_cookie_is_strictly_same_site(archive_db):
    _, db = archive_db
    token = "s" * 32
    app = TestClient(create_app(ServeSettings(f"sqlite:///{db}", token=token)), base_url=LOCAL)
    first = app.get(f"/plans?token={token}", follow_redirects=False)
    cookie = first.headers["set-cookie"].lower()
    assert "samesite=strict" in cookie and "httponly" in cookie


# Parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "said"),
    [("/api/plans", {"page": str(10**20)}, "page"), ("/plans", {"page": str(10**20)}, "page"),
     ("/api/plans", {"page": "0"}, "page"), ("/api/plans", {"size": "100000"}, "size"),
     ("/api/plans", {"since": "yesterday"}, "since: 'yesterday' is not a date"),
     ("/plans", {"until": "2026-13-45"}, "until"),
     ("/plans", {"since": "yesterday"}, "since: 'yesterday' is not a date")],
)  # fmt: skip
def test_bad_parameters_are_422_with_the_reason(client, path, params, said):
    answer = client.get(path, params=params)
    assert answer.status_code == 422, answer.text
    assert said in answer.text


def test_a_good_date_filter_still_works(client):
    assert client.get("/api/plans", params={"since": "2000-01-01"}).json()["total"] == 3
    assert client.get("/api/plans", params={"until": "2000-01-01"}).json()["total"] == 0


@pytest.mark.parametrize(
    "yaml_text",
    ["[" * 5000 + "]" * 5000, "a:\n" + "".join("  " * i + "- \n" for i in range(1, 300)),
     "{a: " * 3000 + "1" + "}" * 3000],
)  # fmt: skip
def test_deeply_nested_yaml_in_a_what_if_is_422(client, yaml_text):
    api = client.post("/api/whatif", json={"protocol": "eso-oligo-rt 1.1.0", "yaml": yaml_text})
    assert api.status_code == 422 and "nested more than" in api.json()["detail"]
    page = client.post("/whatif", data={"protocol": "eso-oligo-rt 1.1.0", "text": yaml_text})
    assert page.status_code == 422 and "nested more than" in page.text


# What an upload's answer says -----------------------------------------------------------------


def test_an_uploaded_plans_record_names_the_users_files_not_the_servers(client, archive_db):
    archive, _ = archive_db
    answer = client.post("/api/check", files=plan_files(archive / "p1"))
    assert answer.status_code == 200
    text = answer.text
    server_paths = [os.sep + "tmp", "rtcheck-upload-", sysconfig.get_paths()["purelib"],
                    str(Path(__file__).parents[2] / "src")]  # fmt: skip
    for path in server_paths:
        assert path not in text, path
    names = sorted(i["path"] for i in answer.json()["inputs"])
    assert names == sorted(p.name for p in (archive / "p1").glob("*.dcm"))
    assert answer.json()["protocol"]["path"] == "eso-oligo-rt.yaml"
    report = client.post("/check", files=plan_files(archive / "p1")).text
    for path in server_paths:
        assert path not in report, path


def test_an_uploaded_plans_error_names_the_users_file(client, archive_db):
    archive, _ = archive_db
    files = [f for f in plan_files(archive / "p1") if not f[1][0].startswith("RS")]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("plan/broken-RS.dcm", b"DICM" * 10)
    files.append(("files", ("my plan.zip", buffer.getvalue())))
    answer = client.post("/api/check", files=files)
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert "rtcheck-upload-" not in detail and "/tmp" not in detail
    assert "no RTSTRUCT" in detail


# A real server: sizes as they arrive, checks beside other pages, the token file ---------------


@pytest.fixture(scope="module")
def served(archive_db, tmp_path_factory):
    _, db = archive_db
    running = Served(db, tmp_path_factory.mktemp("hardened") / "serve.log", "--max-upload-mb", "1")
    yield running
    running.stop()


def raw_request(port: int, head: str, body_chunks: list[bytes] = (), pause: float = 0.0) -> bytes:  # type: ignore[assignment]
    """Send ``head`` (and ``body_chunks``, stopping where the server closes) and read the
    answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head.encode())
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
                if pause:
                    time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what it answered is below
        answer = b""
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
            if b"\r\n\r\n" in answer and b'"}' in answer:
                break
    return answer


def test_a_body_declared_too_large_is_refused_before_it_is_read(served):
    head = (f"POST /api/check HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {2**30}\r\n\r\n")  # fmt: skip
    answer = raw_request(served.port, head)  # not one byte of the 1 GiB is sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than" in answer


def test_a_chunked_body_is_cut_off_at_the_limit(served):
    head = (f"POST /api/check HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    part = (b'--x\r\nContent-Disposition: form-data; name="files"; filename="RD.dcm"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n")  # fmt: skip
    chunk = b"%x\r\n%s\r\n" % (256 * 1024, b"\0" * (256 * 1024))
    # A file of 64 MB offered, 256 kB at a time; the limit is 1 MB (and 1 MB for framing).
    sent = [b"%x\r\n%s\r\n" % (len(part), part)] + [chunk] * 256
    answer = raw_request(served.port, head, sent)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    spooled = [p for p in Path("/tmp").glob("tmp*") if p.is_file() and p.stat().st_size > 4e6]
    assert not [p for p in spooled if time.time() - p.stat().st_mtime < 30]


def test_a_foreign_host_header_is_refused_by_the_running_server(served):
    answer = raw_request(served.port, "GET /api/plans HTTP/1.1\r\nHost: rebound.example\r\n"
                         "Connection: close\r\n\r\n")  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 400") and b"PHANTOM" not in answer


def test_the_server_answers_other_pages_while_plans_are_checked(archive_db, tmp_path):
    """Two uploads are checked while the plan list is asked for again and again: the list
    keeps coming back before the first check ends (checks run in a worker process, not on the
    server's loop)."""
    import httpx

    archive, db = archive_db
    running = Served(db, tmp_path / "serve.log")
    files = plan_files(archive / "p1")
    finished: list[str] = []

    def upload(name: str) -> None:
        answer = httpx.post(running.url + "/api/check", files=files, timeout=120)
        assert answer.status_code == 200, answer.text
        finished.append(name)

    try:
        threads = [threading.Thread(target=upload, args=(f"check {i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        answered_during = 0
        while any(t.is_alive() for t in threads):
            listed = httpx.get(running.url + "/api/plans", timeout=30)
            assert listed.status_code == 200
            if not finished:
                answered_during += 1
            time.sleep(0.05)
        for thread in threads:
            thread.join()
    finally:
        running.stop()
    assert sorted(finished) == ["check 0", "check 1"]
    assert answered_during >= 3  # the list kept coming while the first check ran


def test_a_token_file_others_can_read_is_refused(tmp_path):
    token = tmp_path / "token.txt"
    token.write_text("t" * 32)
    token.chmod(0o644)
    done = subprocess.run(
        [sys.executable, "-m", "rtcheck.cli", "serve", "--token-file", str(token), "--db",
         str(tmp_path / "x.db")], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and f"chmod 600 {token}" in done.stderr
    assert done.stderr.count("\n") == 1


def test_a_database_password_is_never_printed(tmp_path):
    from rtcheck.cli import shown_url as _shown_url

    url = "postgresql+psycopg://qa:s3cret-pw@127.0.0.1:1/rtcheck"
    assert _shown_url(url) == "postgresql+psycopg://qa:***@127.0.0.1:1/rtcheck"
    (tmp_path / "empty").mkdir()
    for command in (["results", "--db", url], ["batch", str(tmp_path / "empty"), "--db", url],
                    ["serve", "--db", url, "--port", "1"]):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "rtcheck.cli", *command],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert "s3cret-pw" not in done.stdout + done.stderr, command


def test_a_token_file_that_is_a_pipe_or_too_large_is_refused_in_one_line(tmp_path):
    pipe = tmp_path / "token.fifo"
    os.mkfifo(pipe)  # reading it would block for ever
    large = tmp_path / "large.txt"
    large.write_text("t" * 5000)
    large.chmod(0o600)
    for token, said in ((pipe, "not a regular file"), (large, "more than 4096 bytes")):
        done = subprocess.run(
            [sys.executable, "-m", "rtcheck.cli", "serve", "--token-file", str(token), "--db",
             str(tmp_path / "x.db")], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1
