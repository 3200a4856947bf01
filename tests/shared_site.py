"""A small site run as separate worker processes that share one Redis store.

``tests/test_shared_redis.py`` starts this module under uvicorn twice, on two ports, with
the store URL in ``SITEWARDEN_TEST_STORE``, and drives both workers over real HTTP to prove
that they act as one site: sessions, "log out everywhere", lockout counts, rate limits,
bans and TOTP replay marks are all shared, and a Redis outage follows the failure policy.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sitewarden import Warden
from sitewarden.guards.lockout import LockoutStatus
from sitewarden.web.starlette import exchange

#: The TOTP secret every test account shares (given by the test; not a real secret).
TOTP_SECRET = os.environ["SITEWARDEN_TEST_TOTP_SECRET"]

warden = Warden(
    "balanced",
    store=os.environ["SITEWARDEN_TEST_STORE"],
    allowed_hosts=["127.0.0.1"],
    https_redirect=False,
    session_cookie_secure=False,
    rate_limits={"/limited": "10/minute"},
    ban_after=3,
    ban_window=600,
    lockout_threshold=5,
    on_store_failure=os.environ.get("SITEWARDEN_TEST_ON_STORE_FAILURE", "closed"),
)


async def whoami(request: Request) -> Response:
    return PlainTextResponse(exchange(request).user or "-")


async def login(request: Request) -> Response:
    exchange(request).login(request.query_params["user"])
    return PlainTextResponse("ok")


async def logout_everywhere(request: Request) -> Response:
    exchange(request).logout(everywhere=True)
    return PlainTextResponse("ok")


def _status(status: LockoutStatus) -> dict[str, object]:
    return {
        "locked": status.locked,
        "failures": status.failures,
        "retry_after": status.retry_after,
    }


async def fail(request: Request) -> Response:
    ex = exchange(request)
    status = warden.lockout.failure(request.query_params["login"], ex.origin.client)
    return JSONResponse(_status(status))


async def status(request: Request) -> Response:
    ex = exchange(request)
    found = warden.lockout.status(request.query_params["login"], ex.origin.client)
    return JSONResponse(_status(found))


async def limited(request: Request) -> Response:
    return PlainTextResponse("ok")


async def totp(request: Request) -> Response:
    query = request.query_params
    ok = warden.totp.verify(query["user"], TOTP_SECRET, query["code"])
    return JSONResponse({"ok": ok})


async def pid(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()))


app = warden.asgi(
    Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/login", login, methods=["POST"]),
            Route("/logout-everywhere", logout_everywhere, methods=["POST"]),
            Route("/fail", fail, methods=["POST"]),
            Route("/status", status),
            Route("/limited", limited),
            Route("/totp", totp, methods=["POST"]),
            Route("/pid", pid),
        ]
    )
)
