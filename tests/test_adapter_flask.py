"""Flask: the ``Sitewarden`` extension with Flask's own test client."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, render_template_string, request, session

from sitewarden.warden import Warden
from sitewarden.web.flask import Sitewarden, exchange
from tests.test_asgi_wsgi import (
    CROSS_SITE,
    EVIL_HOST,
    FINGERPRINTS,
    FORM,
    HOST,
    HTTP,
    HTTPS,
    REPORT_BODY,
    REPORT_HEADERS,
    REPORT_PATH,
    SAME_ORIGIN,
    Recorder,
    assert_login_cookie,
    assert_logout_cookie,
    assert_nonce_in_csp,
    assert_security_headers,
    make_warden,
    session_cookie,
    token_from,
)


def build(rec: Recorder, warden: Warden | None = None, **settings: Any) -> tuple[Flask, Sitewarden]:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    sw = Sitewarden(app, warden=warden, **settings)

    @app.get("/")
    def home() -> Any:
        rec.calls += 1
        session["seen"] = True  # Flask's own cookie: hardened on the way out
        return "home", 200, FINGERPRINTS

    @app.get("/form")
    def form() -> str:
        rec.calls += 1
        return render_template_string(
            '<form method="post">{{ csrf_input() }}</form><p id="t">{{ csrf_token() }}</p>'
        )

    @app.get("/nonce")
    def nonce() -> str:
        return render_template_string('<script nonce="{{ csp_nonce() }}">1</script>')

    @app.get("/sri")
    def sri() -> str:
        return render_template_string("<script {{ sri(p) }}></script>", p=request.args["p"])

    @app.post("/change")
    def change() -> str:
        rec.calls += 1
        rec.changes += 1
        return f"changed {request.form.get('a')}"

    @app.post("/hook")
    @sw.warden.csrf_exempt
    def hook() -> str:
        rec.changes += 1
        return "hooked"

    @app.post("/login")
    def login() -> str:
        exchange().login("alice")
        return "welcome"

    @app.post("/logout")
    def logout() -> str:
        exchange().logout()
        return "bye"

    @app.get("/whoami")
    def whoami() -> str:
        return str(exchange().user)

    hooks = Blueprint("hooks", __name__)

    @hooks.post("/in")
    def incoming() -> str:
        rec.changes += 1
        return "blueprint hook"

    sw.warden.csrf_exempt(hooks)  # type: ignore[arg-type]  # a whole blueprint
    app.register_blueprint(hooks, url_prefix="/hooks")
    return app, sw


@pytest.fixture
def site() -> tuple[Any, Recorder]:
    rec = Recorder()
    app, _ = build(rec, make_warden())
    return app.test_client(), rec


def test_headers_and_cookies(site: tuple[Any, Recorder]) -> None:
    client, _ = site
    r = client.get("/", base_url=HTTPS)
    assert r.status_code == 200
    assert_security_headers(r.headers, https=True)
    (flask_session,) = r.headers.getlist("Set-Cookie")
    assert flask_session.startswith("session=")
    assert "Secure" in flask_session and "SameSite=Lax" in flask_session
    assert_security_headers(client.get("/", base_url=HTTP).headers, https=False)


def test_bad_host(site: tuple[Any, Recorder]) -> None:
    client, rec = site
    assert client.get("/", base_url=f"https://{EVIL_HOST}").status_code == 400
    assert client.post("/hook", base_url=f"https://{EVIL_HOST}").status_code == 400
    assert rec.calls == 0 and rec.changes == 0


def test_https_redirect_and_settings_keywords() -> None:
    rec = Recorder()
    app, _ = build(rec, store="memory://", allowed_hosts=[HOST])  # https_redirect on
    client = app.test_client()
    r = client.get("/form?x=1", base_url=HTTP)
    assert r.status_code == 301 and r.headers["Location"] == f"{HTTPS}/form?x=1"
    assert client.post("/change", base_url=HTTP).status_code == 308
    assert rec.calls == 0
    assert client.get("/form", base_url=HTTPS).status_code == 200


def test_init_app_from_config() -> None:
    app = Flask(__name__)
    app.config["SITEWARDEN"] = {"store": "memory://", "allowed_hosts": [HOST]}
    sw = Sitewarden()
    sw.init_app(app)
    assert app.extensions["sitewarden"] is sw
    assert sw.warden.policy.allowed_hosts == (HOST,)
    assert app.test_client().get("/", base_url=f"https://{EVIL_HOST}").status_code == 400


def test_csrf(site: tuple[Any, Recorder]) -> None:
    client, rec = site
    r = client.post("/change", base_url=HTTPS, data={"a": "1"}, headers=CROSS_SITE)
    assert r.status_code == 403
    assert rec.calls == 0 and rec.changes == 0
    assert_security_headers(r.headers, https=True)  # the refusal gets the headers too
    r = client.post("/change", base_url=HTTPS, data={"a": "1"}, headers=SAME_ORIGIN)
    assert r.status_code == 200
    token = token_from(client.get("/form", base_url=HTTPS).get_data(as_text=True))
    r = client.post("/change", base_url=HTTPS, data={"_authenticator": token, "a": "2"})
    assert r.status_code == 200 and r.get_data(as_text=True) == "changed 2"
    assert client.post("/change", base_url=HTTPS, data={"a": "3"}).status_code == 403
    bad = {"_authenticator": "z" * 64}
    assert client.post("/change", base_url=HTTPS, data=bad).status_code == 403
    assert rec.changes == 2
    # a JSON client asking for JSON gets the refusal as JSON
    r = client.post("/change", base_url=HTTPS, json={}, headers={"accept": "application/json"})
    assert r.status_code == 403 and r.json["error"] == "csrf"


def test_multipart_token(site: tuple[Any, Recorder]) -> None:
    client, _ = site
    token = token_from(client.get("/form", base_url=HTTPS).get_data(as_text=True))
    data = {"_authenticator": token, "a": "4", "file": (io.BytesIO(b"content"), "x.txt")}
    r = client.post("/change", base_url=HTTPS, data=data, content_type="multipart/form-data")
    assert r.status_code == 200 and r.get_data(as_text=True) == "changed 4"


def test_exempt_view_and_blueprint(site: tuple[Any, Recorder]) -> None:
    client, rec = site
    assert client.post("/hook", base_url=HTTPS, headers=CROSS_SITE).status_code == 200
    assert client.post("/hooks/in", base_url=HTTPS, headers=CROSS_SITE).status_code == 200
    assert client.post("/change", base_url=HTTPS, headers=CROSS_SITE).status_code == 403
    assert client.post("/nowhere", base_url=HTTPS, headers=CROSS_SITE).status_code == 403
    assert rec.changes == 2


def test_login_logout(site: tuple[Any, Recorder]) -> None:
    client, _ = site
    r = client.post("/login", base_url=HTTPS, headers=SAME_ORIGIN)
    assert_login_cookie(session_cookie(r.headers.getlist("Set-Cookie")))
    r = client.get("/whoami", base_url=HTTPS)
    assert r.get_data(as_text=True) == "alice"
    assert r.headers["Cache-Control"] == "no-store"
    r = client.post("/logout", base_url=HTTPS, headers=SAME_ORIGIN)
    assert_logout_cookie(session_cookie(r.headers.getlist("Set-Cookie")))
    assert "Clear-Site-Data" in r.headers
    assert client.get("/whoami", base_url=HTTPS).get_data(as_text=True) == "None"


def test_nonce_sri_manage(site: tuple[Any, Recorder], tmp_path: Path) -> None:
    client, rec = site
    r = client.get("/nonce", base_url=HTTPS)
    assert_nonce_in_csp(r.get_data(as_text=True), r.headers)
    script = tmp_path / "app.js"
    script.write_bytes(b"1")
    r = client.get("/sri", base_url=HTTPS, query_string={"p": str(script)})
    assert 'integrity="sha384-' in r.get_data(as_text=True)
    calls = rec.calls
    assert client.get("/manage_main", base_url=HTTPS).status_code == 404
    assert rec.calls == calls


def test_exchange_outside_the_extension() -> None:
    app = Flask(__name__)

    @app.get("/")
    def view() -> str:
        return str(exchange())

    with app.test_request_context("/"), pytest.raises(RuntimeError, match="Sitewarden"):
        view()


def test_csp_report(site: tuple[Any, Recorder]) -> None:
    client, rec = site
    r = client.post(REPORT_PATH, base_url=HTTPS, data=REPORT_BODY, headers=REPORT_HEADERS)
    assert 200 <= r.status_code < 300
    assert rec.calls == 0


def test_csrf_runs_before_earlier_before_request_hooks() -> None:
    rec = Recorder()
    app = Flask(__name__)

    @app.before_request
    def touch() -> None:  # registered before the extension: still runs after the check
        rec.changes += 1

    Sitewarden(app, warden=make_warden())

    @app.post("/x")
    def x() -> str:
        return "x"

    client = app.test_client()
    assert client.post("/x", base_url=HTTPS, headers=CROSS_SITE).status_code == 403
    assert rec.changes == 0
    assert client.post("/x", base_url=HTTPS, headers=SAME_ORIGIN).status_code == 200
    assert rec.changes == 1


def test_warden_and_settings_are_exclusive() -> None:
    with pytest.raises(TypeError):
        Sitewarden(warden=make_warden(), store="memory://")


def test_oversized_form_without_browser_headers(site: tuple[Any, Recorder]) -> None:
    client, rec = site
    body = b"a=" + b"x" * (1 << 20)
    r = client.post("/change", base_url=HTTPS, data=body, content_type=FORM["content-type"])
    assert r.status_code == 413
    assert rec.changes == 0
