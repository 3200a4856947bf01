"""Two worker processes sharing one Redis act as one site — and survive Redis going away.

Each worker is a separate uvicorn process running ``tests/shared_site.py`` on its own
port, as two machines behind a load balancer would; the test talks to both over real HTTP.
The Redis server here writes every change to an append-only file, so stopping and
restarting it mid-run proves the failure policy *and* that nothing was lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyotp
import pytest

from sitewarden.events_store import recent
from sitewarden.guards.bans import BanList
from sitewarden.policy import load_policy
from sitewarden.reports import list_reports
from sitewarden.store import open_store
from tests.redis_server import RedisServer, free_port, redis_binary

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
#: The TOTP secret of every account on the shared site (a test value, not a real secret).
TOTP_SECRET = pyotp.random_base32()


class Worker:
    """One uvicorn process serving the shared site on 127.0.0.1."""

    def __init__(self, store_url: str, log: Path, on_store_failure: str = "closed") -> None:
        self.port = free_port()
        self.store_url = store_url
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "SITEWARDEN_TEST_STORE": store_url,
            "SITEWARDEN_TEST_ON_STORE_FAILURE": on_store_failure,
            "SITEWARDEN_TEST_TOTP_SECRET": TOTP_SECRET,
        }
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.shared_site:app", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.client = httpx.Client(base_url=self.base, timeout=10)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited at start; see {log}:\n{log.read_text()[-2000:]}")
            try:
                if self.client.get("/pid").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"worker did not start; see {log}")
            time.sleep(0.05)

    def post(self, path: str, cookie: str | None = None) -> httpx.Response:
        """POST as a same-origin browser form would (Origin and Fetch-Metadata headers)."""
        headers = {"origin": self.base, "sec-fetch-site": "same-origin"}
        if cookie:
            headers["cookie"] = cookie
        return self.client.post(path, headers=headers)

    def get(self, path: str, cookie: str | None = None) -> httpx.Response:
        return self.client.get(path, headers={"cookie": cookie} if cookie else {})

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def redis_persistent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(
        redis_binary(), free_port(), tmp_path_factory.mktemp("redis-aof"), persistent=True
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _workers(
    server: RedisServer, tmp: Path, on_store_failure: str = "closed"
) -> Iterator[tuple[Worker, Worker]]:
    server.start()
    url = f"{server.url}?prefix=shared-{uuid.uuid4().hex}:"
    a = Worker(url, tmp / "worker-a.log", on_store_failure)
    try:
        b = Worker(url, tmp / "worker-b.log", on_store_failure)
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
def workers(redis_persistent: RedisServer, tmp_path: Path) -> Iterator[tuple[Worker, Worker]]:
    yield from _workers(redis_persistent, tmp_path)


def _session_cookie(response: httpx.Response) -> str:
    for value in response.headers.get_list("set-cookie"):
        name, _, rest = value.partition("=")
        if "session" in name:
            return f"{name}={rest.split(';', 1)[0]}"
    raise AssertionError(f"no session cookie in {response.headers}")


def test_they_are_two_processes(workers: tuple[Worker, Worker]) -> None:
    a, b = workers
    assert a.get("/pid").text != b.get("/pid").text


def test_a_session_issued_on_one_is_valid_on_the_other(workers: tuple[Worker, Worker]) -> None:
    a, b = workers
    cookie = _session_cookie(a.post("/login?user=alice"))
    assert a.get("/whoami", cookie).text == "alice"
    assert b.get("/whoami", cookie).text == "alice"


def test_logout_everywhere_on_one_ends_the_session_on_the_other_at_once(
    workers: tuple[Worker, Worker],
) -> None:
    a, b = workers
    cookie = _session_cookie(a.post("/login?user=bob"))
    assert b.get("/whoami", cookie).text == "bob"  # b has the ring cached now
    assert a.post("/logout-everywhere", cookie).status_code == 200
    # No waiting: the very next request to the other worker is refused.
    assert b.get("/whoami", cookie).text == "-"
    assert a.get("/whoami", cookie).text == "-"


def test_lockout_counts_are_shared_and_exact(workers: tuple[Worker, Worker]) -> None:
    """Twenty failures fired at once through both workers lock at exactly five."""
    a, b = workers
    login = f"victim-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda i: (a, b)[i % 2].post(f"/fail?login={login}").json(), range(20))
        )
    unlocked = sorted(x["failures"] for x in answers if not x["locked"])
    assert unlocked == [1, 2, 3, 4]  # each count seen once: none lost, none doubled
    assert sum(1 for x in answers if x["locked"]) == 16
    for worker in (a, b):
        status = worker.get(f"/status?login={login}").json()
        assert status["locked"] and status["failures"] == 5 and status["retry_after"] > 0


def test_csp_reports_and_events_from_both_workers_land_in_one_place(
    workers: tuple[Worker, Worker],
) -> None:
    a, b = workers
    for worker, page in ((a, "/a"), (b, "/b")):
        report = {"csp-report": {"document-uri": worker.base + page, "blocked-uri": "inline"}}
        sent = worker.client.post(
            "/.sitewarden/csp-report",
            content=json.dumps(report),
            headers={"content-type": "application/csp-report"},
        )
        assert sent.status_code == 204
    with open_store(a.store_url) as store:
        documents = {r["document_uri"] for r in list_reports(store, 10)}
        assert documents == {a.base + "/a", b.base + "/b"}
        kept = [e for e in recent(store, 50) if e["event"] == "csp.report"]
        assert len(kept) == 2  # either worker's events, readable by `sitewarden events`


def test_totp_code_is_accepted_once_across_workers(workers: tuple[Worker, Worker]) -> None:
    a, b = workers
    user = f"u-{uuid.uuid4().hex[:8]}"
    code = pyotp.TOTP(TOTP_SECRET).now()
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda i: (a, b)[i % 2].post(f"/totp?user={user}&code={code}").json()["ok"],
                range(4),
            )
        )
    assert answers.count(True) == 1  # a replay on the other machine is refused


def test_rate_limits_and_bans_are_shared(
    workers: tuple[Worker, Worker], redis_persistent: RedisServer
) -> None:
    a, b = workers
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda i: (a, b)[i % 2].get("/limited").status_code, range(30)))
    assert statuses.count(200) == 10  # exactly the limit, across both workers
    refused = [s for s in statuses if s != 200]
    assert set(refused) <= {429, 403} and 429 in refused
    # Three breaches ban the client from the whole site, on both workers.
    for worker in (a, b):
        banned = worker.get("/whoami")
        assert banned.status_code == 403
        assert int(banned.headers["retry-after"]) > 0
    # The operator lifts the ban once; both workers serve the client again at once.
    with open_store(a.store_url) as store:
        assert BanList(load_policy(), store).unban("127.0.0.1")
    assert a.get("/whoami").status_code == 200
    assert b.get("/whoami").status_code == 200


def test_redis_outage_fails_closed_and_recovers_without_losing_data(
    workers: tuple[Worker, Worker], redis_persistent: RedisServer
) -> None:
    a, b = workers
    cookie = _session_cookie(a.post("/login?user=carol"))
    login = f"target-{uuid.uuid4().hex[:8]}"
    assert a.post(f"/fail?login={login}").json()["failures"] == 1
    assert b.post(f"/fail?login={login}").json()["failures"] == 2

    redis_persistent.stop()
    try:
        for worker in (a, b):
            for path in ("/whoami", "/limited"):
                down = worker.get(path, cookie)
                assert down.status_code == 503, (path, down.status_code, down.text)
                assert "store cannot be reached" in down.text
                # Protections and headers still apply to the refusal.
                assert down.headers["x-content-type-options"] == "nosniff"
                assert "content-security-policy" in down.headers
            assert worker.post(f"/fail?login={login}").status_code >= 500
            assert worker.alive  # no crashed worker
    finally:
        redis_persistent.start()

    # Back: the session, the counts and the rings are all still there.
    deadline = time.monotonic() + 10
    while a.get("/whoami", cookie).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert a.get("/whoami", cookie).text == "carol"
    assert b.get("/whoami", cookie).text == "carol"
    assert a.get(f"/status?login={login}").json()["failures"] == 2
    assert b.post(f"/fail?login={login}").json()["failures"] == 3


def test_redis_outage_with_the_open_policy_keeps_pages_up(
    redis_persistent: RedisServer, tmp_path: Path
) -> None:
    for a, b in _workers(redis_persistent, tmp_path, on_store_failure="open"):
        cookie = _session_cookie(a.post("/login?user=dave"))
        redis_persistent.stop()
        try:
            for worker in (a, b):
                page = worker.get("/whoami", cookie)
                assert page.status_code == 200
                assert page.text == "-"  # signed out while the store is away
                assert page.headers["x-content-type-options"] == "nosniff"
                assert worker.get("/limited").status_code == 200  # limits skipped, as chosen
                assert worker.alive
        finally:
            redis_persistent.start()
        assert b.get("/whoami", cookie).text == "dave"
