"""Django: the middleware (sync and async) and the template tags, with Django's test clients.

Django is configured once for the process (``settings.configure``); this module is also
the ``ROOT_URLCONF``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings

from tests.test_asgi_wsgi import (
    CROSS_SITE,
    EVIL_HOST,
    FINGERPRINTS,
    HOST,
    HTTPS,
    REPORT_BODY,
    REPORT_PATH,
    SAME_ORIGIN,
    SESSION,
    Recorder,
    assert_login_cookie,
    assert_logout_cookie,
    assert_nonce_in_csp,
    assert_security_headers,
    token_from,
)

BASE_SETTINGS = {
    "store": "memory://",
    "allowed_hosts": [HOST, "manage.example.org"],
    "manage_hosts": ["manage.example.org"],
    "https_redirect": False,
}

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="sitewarden-tests",
        ALLOWED_HOSTS=["*"],  # sitewarden validates the host, before Django
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["sitewarden.contrib.django"],
        MIDDLEWARE=[
            "sitewarden.web.django.SitewardenMiddleware",
            "django.middleware.common.CommonMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
            }
        ],
        SITEWARDEN=dict(BASE_SETTINGS),
        USE_TZ=True,
    )
    django.setup()

from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.template import engines  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils.decorators import method_decorator  # noqa: E402
from django.views import View  # noqa: E402
from django.views.decorators.csrf import csrf_exempt as django_csrf_exempt  # noqa: E402

from sitewarden.web import django as sw_django  # noqa: E402

REC = Recorder()
_engine = engines["django"]
FORM = _engine.from_string('{% load sitewarden %}<form method="post">{% csrf_input %}</form>')
NONCE = _engine.from_string('{% load sitewarden %}<script nonce="{% csp_nonce %}">1</script>')
SRI = _engine.from_string("{% load sitewarden %}<script {% sri p %}></script>")


def home(request: HttpRequest) -> HttpResponse:
    REC.calls += 1
    response = HttpResponse("home")
    for name, value in FINGERPRINTS:
        response[name] = value
    response.set_cookie("pref", "dark")
    return response


def form(request: HttpRequest) -> HttpResponse:
    REC.calls += 1
    return HttpResponse(FORM.render({}, request))


def nonce(request: HttpRequest) -> HttpResponse:
    return HttpResponse(NONCE.render({}, request))


def sri(request: HttpRequest) -> HttpResponse:
    return HttpResponse(SRI.render({"p": request.GET["p"]}, request))


def change(request: HttpRequest) -> HttpResponse:
    REC.calls += 1
    REC.changes += 1
    return HttpResponse(f"changed {request.POST.get('a')}")


@django_csrf_exempt
def django_hook(request: HttpRequest) -> HttpResponse:
    REC.changes += 1
    return HttpResponse("django hook")


@sw_django.csrf_exempt
def sitewarden_hook(request: HttpRequest) -> HttpResponse:
    REC.changes += 1
    return HttpResponse("sitewarden hook")


@method_decorator(django_csrf_exempt, name="dispatch")
class HookView(View):
    def post(self, request: HttpRequest) -> HttpResponse:
        REC.changes += 1
        return HttpResponse("class hook")


def login(request: Any) -> HttpResponse:
    request.sitewarden.login("alice")
    return HttpResponse("welcome")


def logout(request: Any) -> HttpResponse:
    request.sitewarden.logout()
    return HttpResponse("bye")


def whoami(request: Any) -> HttpResponse:
    return HttpResponse(str(request.sitewarden_user))


async def async_change(request: HttpRequest) -> HttpResponse:
    REC.changes += 1
    return HttpResponse("async changed")


async def async_whoami(request: Any) -> HttpResponse:
    return HttpResponse(str(request.sitewarden.user))


urlpatterns = [
    path("", home),
    path("form", form),
    path("nonce", nonce),
    path("sri", sri),
    path("change", change),
    path("django-hook", django_hook),
    path("sitewarden-hook", sitewarden_hook),
    path("class-hook", HookView.as_view()),
    path("login", login),
    path("logout", logout),
    path("whoami", whoami),
    path("async-change", async_change),
    path("async-whoami", async_whoami),
]


class HttpsClient(Client):
    """Django's test client, every request over HTTPS."""

    def request(self, **request: Any) -> Any:
        request.update({"wsgi.url_scheme": "https", "SERVER_PORT": "443"})
        return super().request(**request)


@pytest.fixture(autouse=True)
def fresh() -> Any:
    """A fresh Warden (memory store) and counters for every test."""
    REC.calls = REC.changes = 0
    with override_settings(SITEWARDEN=dict(BASE_SETTINGS)):
        yield


@pytest.fixture
def client() -> Client:
    return HttpsClient(headers={"host": HOST})


def cookie_headers(response: Any) -> list[str]:
    return [m.OutputString() for m in response.cookies.values()]


def test_headers_fingerprints_and_cookies(client: Client) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert_security_headers(r.headers, https=True)
    pref = response_cookie = r.cookies["pref"]
    assert "Secure" in pref.OutputString() and "HttpOnly" in pref.OutputString()
    assert response_cookie["secure"] is True and response_cookie["samesite"] == "Lax"
    plain = Client(headers={"host": HOST}).get("/")
    assert_security_headers(plain.headers, https=False)


def test_bad_host(client: Client) -> None:
    assert client.get("/", headers={"host": EVIL_HOST}).status_code == 400
    assert client.post("/django-hook", headers={"host": EVIL_HOST}).status_code == 400
    assert REC.calls == 0 and REC.changes == 0


def test_https_redirect() -> None:
    with override_settings(SITEWARDEN={**BASE_SETTINGS, "https_redirect": True}):
        plain = Client(headers={"host": HOST})
        r = plain.get("/form?x=1")
        assert r.status_code == 301 and r["Location"] == f"{HTTPS}/form?x=1"
        assert plain.post("/change").status_code == 308
        assert REC.calls == 0
        assert HttpsClient(headers={"host": HOST}).get("/form").status_code == 200


def test_csrf(client: Client) -> None:
    r = client.post("/change", {"a": "1"}, headers=CROSS_SITE)
    assert r.status_code == 403
    assert REC.calls == 0 and REC.changes == 0
    assert client.post("/change", {"a": "1"}, headers=SAME_ORIGIN).status_code == 200
    token = token_from(client.get("/form").content.decode())
    # urlencoded and multipart bodies; the view still reads request.POST
    urlencoded = f"_authenticator={token}&a=2"
    r = client.post("/change", urlencoded, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200 and r.content == b"changed 2"
    r = client.post("/change", {"_authenticator": token, "a": "3"})
    assert r.status_code == 200 and r.content == b"changed 3"
    assert client.post("/change", {"a": "4"}).status_code == 403
    assert client.post("/change", {"_authenticator": "q" * 64}).status_code == 403
    assert REC.changes == 3


def test_exemptions(client: Client) -> None:
    assert client.post("/django-hook", headers=CROSS_SITE).status_code == 200
    assert client.post("/sitewarden-hook", headers=CROSS_SITE).status_code == 200
    assert client.post("/class-hook", headers=CROSS_SITE).status_code == 200
    assert client.post("/change", headers=CROSS_SITE).status_code == 403
    # an unrouted path never reaches process_view (nor any view): Django answers 404
    assert client.post("/nowhere", headers=CROSS_SITE).status_code == 404
    assert REC.changes == 3


def test_login_logout(client: Client) -> None:
    r = client.post("/login", headers=SAME_ORIGIN)
    assert r.status_code == 200
    assert_login_cookie(r.cookies[SESSION].OutputString())
    assert r.cookies[SESSION]["httponly"] is True
    r = client.get("/whoami")
    assert r.content == b"alice"
    assert r["Cache-Control"] == "no-store"
    r = client.post("/logout", headers=SAME_ORIGIN)
    assert_logout_cookie(r.cookies[SESSION].OutputString())
    assert r["Clear-Site-Data"] == '"cache", "cookies", "storage"'
    assert client.get("/whoami").content == b"None"


def test_nonce_sri_manage(client: Client, tmp_path: Path) -> None:
    r = client.get("/nonce")
    assert_nonce_in_csp(r.content.decode(), r.headers)
    script = tmp_path / "app.js"
    script.write_bytes(b"1")
    r = client.get("/sri", {"p": str(script)})
    assert 'integrity="sha384-' in r.content.decode()
    assert client.get("/site/manage_main").status_code == 404
    assert REC.calls == 0


def test_async_stack() -> None:
    async def scenario() -> None:
        # Django's AsyncClient always sends "Host: testserver" (a second Host header
        # given in headers= is appended to it, not replacing it)
        client = AsyncClient()
        r = await client.get("/", secure=True)
        assert r.status_code == 200
        assert_security_headers(r.headers, https=True)
        r = await client.get("/", headers={"host": EVIL_HOST}, secure=True)
        assert r.status_code == 400  # two Host headers
        r = await client.post("/async-change", headers=CROSS_SITE, secure=True)
        assert r.status_code == 403
        r = await client.post("/async-change", headers=SAME_ORIGIN, secure=True)
        assert r.status_code == 200
        token = token_from((await client.get("/form", secure=True)).content.decode())
        r = await client.post("/change", {"_authenticator": token, "a": "5"}, secure=True)
        assert r.content == b"changed 5"
        r = await client.post("/login", headers=SAME_ORIGIN, secure=True)
        assert_login_cookie(r.cookies[SESSION].OutputString())
        r = await client.get("/async-whoami", secure=True)
        assert r.content == b"alice" and r["Cache-Control"] == "no-store"

    # in a thread of its own: another test's fixture (Playwright's sync API) may leave an
    # event loop running in the main thread, where asyncio.run() is refused
    only_testserver = {**BASE_SETTINGS, "allowed_hosts": ["testserver"]}
    with override_settings(SITEWARDEN=only_testserver), ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()
    assert REC.changes == 2


def test_missing_setting() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with override_settings(SITEWARDEN=None), pytest.raises(ImproperlyConfigured):
        sw_django.get_warden()


def test_one_warden_per_settings() -> None:
    assert sw_django.get_warden() is sw_django.get_warden()


def test_csp_report(client: Client) -> None:
    r = client.post(
        REPORT_PATH,
        REPORT_BODY,
        content_type="application/csp-report",
        headers=CROSS_SITE,
    )
    assert 200 <= r.status_code < 300
    assert REC.calls == 0


def test_oversized_form_without_browser_headers(client: Client) -> None:
    body = "a=" + "x" * (1 << 20)
    r = client.post("/change", body, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 413
    assert REC.changes == 0
