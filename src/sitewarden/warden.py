"""``Warden``: the sans-I/O engine that every adapter drives.

An adapter turns a request into a :class:`~sitewarden.web.request.RequestView` and calls
:meth:`Warden.begin`, which runs the guards in order —

    client address → host → HTTPS → CSP report receiver → management paths →
    CORS preflight → session → CSRF

— and returns an :class:`Exchange`. If ``exchange.reply`` is set, sitewarden answers
itself and the application is not called. Otherwise the adapter hands the exchange to
the application (``scope["sitewarden"]`` / ``environ["sitewarden"]``) and, when the
application starts its response, asks the exchange for the final header list: security
headers added, fingerprint headers removed, cookies hardened, the session cookie issued,
refreshed or cleared.

Everything that can be computed from the policy is computed here, once, at start-up.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitewarden import events
from sitewarden.csrf import check_token, create_token
from sitewarden.errors import KeyringError, StoreError
from sitewarden.events_store import EventRecorder
from sitewarden.guards.clientip import FORWARDED_HEADERS, Origin, ProxyResolver
from sitewarden.guards.cors import CorsGuard
from sitewarden.guards.csrf_guard import PASS as _CSRF_PASS
from sitewarden.guards.csrf_guard import CsrfGuard, Decision
from sitewarden.guards.hosts import HostGuard
from sitewarden.guards.https import https_redirect
from sitewarden.guards.paths import ManagementGuard
from sitewarden.headers.cookies import harden_set_cookie
from sitewarden.headers.csp import new_nonce
from sitewarden.headers.headerset import SecurityHeaders
from sitewarden.keyring import KeyManager
from sitewarden.policy import Policy, load_policy
from sitewarden.reports import ReportReceiver
from sitewarden.sessions import SessionManager, SessionState
from sitewarden.store import default_store_url
from sitewarden.web.request import Reply, RequestView

if TYPE_CHECKING:  # imported when first used: start-up does not pay for unused parts
    from sitewarden.accounts.passwords import Passwords
    from sitewarden.accounts.totp import TOTP
    from sitewarden.guards.bans import BanList
    from sitewarden.guards.lockout import Lockout
    from sitewarden.guards.ratelimit import RateLimiter
    from sitewarden.metrics import Metrics

__all__ = ["MAX_BODY", "CsrfTokens", "Exchange", "Origin", "Warden"]

_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))
_FORWARDED = frozenset(FORWARDED_HEADERS)  # forwarded_headers_present(view), inlined
_CURRENT_SITE = events.current_site
_MISSING = object()
#: Longest Cookie header whose session cookie is remembered (4096 entries at most, so the
#: memo stays under about 32 MiB even when every entry is an attacker's largest header).
_MEMO_HEADER_MAX = 8192
_CLEAR_SITE_DATA = ("clear-site-data", '"cache", "cookies", "storage"')
_NO_STORE = ("cache-control", "no-store")

#: Largest request body sitewarden reads itself (for a CSRF form field or a CSP report).
MAX_BODY = 1 << 20


def _plain(status: int, text: str) -> Reply:
    """Build a small text reply for refusals that need no explanation page."""
    return Reply(
        status,
        [
            ("content-type", "text/plain; charset=utf-8"),
            ("cache-control", "no-store"),
        ],
        text.encode(),
    )


_BAD_HOST = _plain(400, "Bad Request: this host name is not served here.\n")
_NOT_FOUND = _plain(404, "Not Found\n")
_STORE_DOWN = _plain(
    503, "Service Unavailable: the security state store cannot be reached; try again shortly.\n"
)


class CsrfTokens:
    """``warden.csrf``: authenticators for templates and JavaScript."""

    def __init__(self, keys: KeyManager, field: str, header: str) -> None:
        """Bind to *keys*; *field* and *header* are where the guard looks for tokens."""
        self._keys = keys
        #: The form field name the guard reads (``_authenticator`` by default).
        self.field = field
        #: The request header the guard reads (``X-CSRF-Token`` by default).
        self.header = header

    def token(self, userid: str | None = None, extra: str = "") -> str:
        """Return a fresh authenticator for *userid* (``None``: anonymous visitor)."""
        return create_token(self._keys, userid, extra)

    def check(self, token: object, userid: str | None = None, extra: str = "") -> bool:
        """Return whether *token* is a valid authenticator for *userid* and *extra*."""
        return check_token(self._keys, token, userid, extra)


class Warden:
    """sitewarden's protections for one site, configured by one :class:`Policy`.

    ``Warden(preset="balanced", store="sqlite:///.sitewarden/state.db", allowed_hosts=[...])``
    or ``Warden.from_file("sitewarden.toml")``; then ``warden.asgi(app)`` or
    ``warden.wsgi(app)``. A wrong setting raises :class:`~sitewarden.errors.ConfigError`
    naming it, before anything is served.
    """

    def __init__(
        self,
        preset: str = "balanced",
        store: str | None = None,
        *,
        config: str | Path | None = None,
        keys: KeyManager | None = None,
        **settings: Any,
    ) -> None:
        """Build the policy, open the store and precompute every guard and header."""
        if store is not None:
            settings["store"] = store
        self.policy: Policy = load_policy(preset, config, **settings)
        p = self.policy
        self.keys = keys if keys is not None else KeyManager.open(p.store or default_store_url())
        #: The store every part of this site keeps its state in.
        self.store = self.keys.store
        revocation_ttl = p.session_revocation_ttl
        if revocation_ttl is None:  # many machines: "log out everywhere" must act at once
            revocation_ttl = 0.0 if self.store.remote else 1.0
        self.sessions = SessionManager(p, self.keys, revocation_ttl=revocation_ttl)
        self.csrf = CsrfTokens(self.keys, p.csrf_field, p.csrf_header)
        self.headers = SecurityHeaders(p)
        self._proxies = ProxyResolver(p.trusted_proxies)
        self._hosts = HostGuard(p.allowed_hosts)
        self._manage = ManagementGuard(p.manage_paths, p.manage_hosts, p.manage_networks)
        # The guards' memos of known answers, tested before calling them (hot path).
        self._hosts_seen = self._hosts.seen
        self._ordinary_paths = self._manage.ordinary
        self._cors = CorsGuard(p) if p.cors_origins else None
        self._csrf_guard = CsrfGuard(p, self.keys)
        self._reports = ReportReceiver(p, self.keys.store) if p.csp_report_path else None
        self._warned_forwarded = False
        # Precomputed response headers, as text and as bytes for ASGI.
        self._always: tuple[tuple[str, str], ...] = self.headers.always
        self._https: tuple[tuple[str, str], ...] = self.headers.https_only
        self._static_csp: list[tuple[str, str]] = self.headers.csp.headers(None)
        self._remove = self.headers.remove
        self._names = self.headers.names | {"cache-control", "vary", "clear-site-data"}
        self._remove_b = frozenset(n.encode("latin-1") for n in self._remove)
        self._names_b = frozenset(n.encode("latin-1") for n in self._names)
        # Response header names that send a response down the general path.
        self._touched_b = self._remove_b | self._names_b | {b"set-cookie"}
        self._cookie_exempt = frozenset(p.harden_cookies_except) | {self.sessions.cookie_name}
        self._no_proxies = not p.trusted_proxies
        self._https_redirect = p.https_redirect
        self._report_path = p.csp_report_path if self._reports is not None else None
        self._csrf_on = p.csrf != "off"
        # Bans and rate limits: off unless configured, and then one store round trip per
        # request (the ban check, the route's limit and a due session-ring read together).
        self._limits_on = bool(p.rate_limits or p.block_networks or p.allow_networks)
        if self._limits_on:
            self._limiter = self.ratelimit
            self._banlist = self.bans
        self._remote = self.store.remote
        # Security events: the newest kept in the store (for `sitewarden events` and admin
        # pages), and counted for Prometheus when a metrics path is set.
        self._sinks: list[events.Sink] = []
        self.recorder: EventRecorder | None = None
        if p.events_keep:
            self.recorder = EventRecorder(self.store, p.events_keep)
            self._sinks.append(_weak_sink(self.recorder, self))
        self.metrics: Metrics | None = None
        self._metrics_path = p.metrics_path
        if p.metrics_path is not None:
            from sitewarden.metrics import Metrics

            self.metrics = Metrics()
            self._sinks.append(_weak_sink(self.metrics, self))
        for sink in self._sinks:
            events.add_sink(sink)
        #: The request headers any guard reads: adapters may decode only these.
        self.request_headers: frozenset[bytes] = frozenset(
            name.encode("latin-1")
            for name in (
                "host", "cookie", "origin", "referer", "sec-fetch-site", "content-type",
                "content-length", "x-forwarded-for", "x-forwarded-proto",
                "x-forwarded-host", "forwarded", "access-control-request-method",
                "access-control-request-headers", p.csrf_header.lower(),
            )
        )  # fmt: skip
        name = self.sessions.cookie_name
        self._cookie_marker = name + "="
        self._cookie_memo: dict[str, str | None] = {}
        # The finished security headers of the common responses, computed once: HTTPS or
        # not, signed in or not, safe or unsafe method. A response that needs anything
        # else (a nonce, a login, CORS, an app header of ours) takes the general path.
        # Indexed by 4 * https + 2 * signed_in + unsafe (see Exchange._variant_key).
        self._variants: list[list[tuple[str, str]]] = []
        for https in (False, True):
            for signed_in in (False, True):
                for unsafe in (False, True):
                    headers = list(self._always) + (list(self._https) if https else [])
                    headers += self._static_csp
                    if signed_in and p.no_store_when_signed_in:
                        headers.append(_NO_STORE)
                    vary = (["Cookie"] if signed_in else []) + (
                        list(self._csrf_guard.vary_headers) if unsafe else []
                    )
                    if vary:
                        headers.append(("vary", ", ".join(vary)))
                    self._variants.append(headers)
        self._variants_b = [_encode(value) for value in self._variants]

    # -- login defence (built on first use) -------------------------------------------

    @functools.cached_property
    def passwords(self) -> Passwords:
        """Password hashing (Argon2id) and the password policy."""
        from sitewarden.accounts.passwords import Passwords

        return Passwords(self.policy)

    @functools.cached_property
    def totp(self) -> TOTP:
        """TOTP two-factor sign-in: secrets, QR codes, verification, recovery codes."""
        from sitewarden.accounts.totp import TOTP

        return TOTP(self.policy, self.store, self.keys)

    @functools.cached_property
    def lockout(self) -> Lockout:
        """Failed sign-in counting and account/address lockout."""
        from sitewarden.guards.lockout import Lockout

        return Lockout(self.policy, self.store, self.keys)

    @functools.cached_property
    def ratelimit(self) -> RateLimiter:
        """Rate limits: the policy's per-route limits and any the application asks for."""
        from sitewarden.guards.ratelimit import RateLimiter

        return RateLimiter(self.policy, self.store)

    @functools.cached_property
    def bans(self) -> BanList:
        """Bans of clients that keep breaching rate limits, and the block/allow lists."""
        from sitewarden.guards.bans import BanList

        return BanList(self.policy, self.store)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> Warden:
        """Build a Warden from a ``sitewarden.toml`` file (keyword *overrides* win)."""
        preset = overrides.pop("preset", "balanced")
        return cls(preset, config=path, **overrides)

    # -- adapters --------------------------------------------------------------------

    def asgi(self, app: Any) -> Any:
        """Wrap an ASGI application."""
        from sitewarden.web.asgi import SitewardenASGI

        return SitewardenASGI(app, self)

    def wsgi(self, app: Any) -> Any:
        """Wrap a WSGI application."""
        from sitewarden.web.wsgi import SitewardenWSGI

        return SitewardenWSGI(app, self)

    def csrf_exempt(self, view: Callable[..., Any]) -> Callable[..., Any]:
        """Exempt *view* from the automatic CSRF check (a decorator; adapters honour it)."""
        view.sitewarden_csrf_exempt = True  # type: ignore[attr-defined]
        return view

    # -- the request path ------------------------------------------------------------

    def begin(
        self, view: RequestView, *, csrf_exempt: bool = False, defer_csrf: bool = False
    ) -> Exchange:
        """Run the guards on *view*; the returned exchange carries a reply or a pass.

        With *defer_csrf* the CSRF check is left for :meth:`Exchange.check_csrf`, for
        adapters that learn the view (and its exemption decorator) only after routing.
        """
        _CURRENT_SITE.set(self)  # this request's events belong to this site's sinks
        client = view.client
        if self._no_proxies and (client is None or not client.startswith("::ffff:")):
            origin: Origin | RequestView = view  # nothing to resolve: the view is the origin
        else:
            origin = self._proxies.resolve(view)
        ex = Exchange(self, view, origin)
        # Proxy headers from a peer nobody trusts: ignored, reported once, and a reason to
        # keep management screens shut (every client would look like the proxy).
        untrusted_forwarding = self._no_proxies and not _FORWARDED.isdisjoint(view.headers)
        if untrusted_forwarding and not self._warned_forwarded:
            self._warn_untrusted_forwarding(ex)
        host = origin.host
        if host not in self._hosts_seen and not self._hosts.allows(host):
            self._event("host.refused", ex, reason=f"host {origin.host!r} not allowed")
            ex.reply = _BAD_HOST
            return ex
        if self._https_redirect and not ex.https:
            ex.reply = https_redirect(view, origin, self.policy.https_port)
            if ex.reply is not None:
                return ex
        path = view.path
        ring: Any = _MISSING  # the user's ring when the limits step read it already
        if self._limits_on:
            try:
                ring = self._apply_limits(ex, view, origin.client)
            except StoreError as exc:
                self._store_failure(ex, exc)
                if ex.reply is not None:
                    return ex
                ring = _MISSING  # failing open: no limits this time, the other guards go on
            if ex.reply is not None:
                return ex
        if path == self._report_path:
            ex.body_handler = ex.receive_report
            return ex
        if path == self._metrics_path:
            # Behind a proxy nobody declared, every visitor looks like 127.0.0.1.
            ex.reply = _NOT_FOUND if untrusted_forwarding else self._metrics_reply(origin.client)
            return ex
        if path not in self._ordinary_paths and (
            not self._manage.allowed(path, host, origin.client)
            or (untrusted_forwarding and self._manage.is_management(path))
        ):
            self._event("manage.refused", ex, reason="management path outside its host")
            ex.reply = _NOT_FOUND
            return ex
        if self._cors is not None and view.method == "OPTIONS":
            preflight = self._cors.preflight(view)
            if preflight is not None:
                ex.reply = preflight
                return ex
        try:
            # The session cookie, remembered per Cookie header (see _session_cookie).
            header = view.headers.get("cookie")
            found: Any = self._cookie_memo.get(header, _MISSING) if header else None
            cookie = self._session_cookie(view) if found is _MISSING else found
            if cookie:
                session = (
                    self.sessions.check(cookie)
                    if ring is _MISSING
                    else self.sessions.check(cookie, ring=ring)
                )
                if session is None:
                    ex._clear_cookie = True  # tampered or expired: not signed in
                else:
                    ex.session = session
                    ex.user = session.userid
        except StoreError as exc:
            self._store_failure(ex, exc)  # closed: 503; open: signed out, and on
            if ex.reply is not None:
                return ex
        except KeyringError as exc:  # a damaged per-user ring: that user is not signed in
            self._event("session.keyring_damaged", ex, level=logging.ERROR, reason=str(exc))
            ex.user, ex.session = None, None
        if not defer_csrf and self._csrf_on and view.method not in _SAFE_METHODS:
            try:
                decision = self._csrf_guard.decide(
                    view, ex.site_origin, ex.user, exempt=csrf_exempt
                )
                if decision is not _CSRF_PASS:
                    self._csrf_decided(ex, decision)
            except StoreError as exc:
                self._csrf_store_failure(ex, exc)
        return ex

    def _apply_limits(self, ex: Exchange, view: RequestView, client: str | None) -> Any:
        """Block list, bans and the route's rate limit, in one store round trip.

        Sets ``ex.reply`` to a refusal (403 blocked or banned, 429 over the limit) and
        ``ex.extra_headers`` to the route's RateLimit headers. Returns the user's session
        ring when it was read in the same round trip (a remote store, a due revocation
        check), else ``_MISSING``. Store errors propagate to the caller.
        """
        verdict = self._banlist.static_verdict(client)
        if verdict == "allow":
            return _MISSING  # monitoring, office: never limited or banned
        if verdict == "block":
            self._event("ban.blocked", ex, reason="address in block_networks")
            ex.reply = self._banlist.refusal(None)
            return _MISSING
        key = self._limiter.client_key(client)
        peek = [self._banlist.ban_key(key)]
        ring_key = None
        if self._remote:
            cookie = self._session_cookie(view)
            ring_key = self.sessions.ring_key(cookie) if cookie else None
            if ring_key is not None:
                peek.append(ring_key)
        rule = self._limiter.rule_for(view.method, view.path)
        if rule is None:
            values = self.store.get_many(peek)
            result = None
        else:
            result = self._limiter.hit(key, rule, peek=peek, path=view.path)
            values = list(result.peeked)
        banned = self._banlist.remaining(values[0])
        if banned is not None:
            ex.reply = self._banlist.refusal(banned)
            return _MISSING
        if result is not None:
            assert rule is not None
            if not result.allowed:
                ex.reply = self._limiter.refusal(rule, result)  # refused, whatever follows
                try:
                    self._banlist.breach(key)
                except StoreError as exc:
                    self._event("store.unavailable", ex, level=logging.ERROR, reason=str(exc))
                return _MISSING
            headers = self._limiter.headers(rule, result)
            if headers:
                ex.extra_headers = headers
        return values[1] if ring_key is not None else _MISSING

    def _metrics_reply(self, client: str | None) -> Reply:
        """Prometheus metrics for management networks; anyone else sees nothing there."""
        if self.metrics is None or not self._manage.in_networks(client):
            return _NOT_FOUND
        body, content_type = self.metrics.exposition()
        return Reply(200, [("content-type", content_type), ("cache-control", "no-store")], body)

    def close(self) -> None:
        """Stop recording this site's events and close its store."""
        for sink in self._sinks:
            events.remove_sink(sink)
        self._sinks.clear()
        self.store.close()

    def begin_websocket(self, view: RequestView) -> Exchange:
        """Run the guards on a WebSocket handshake, including its Origin check."""
        view.method = "GET"
        ex = self.begin(view)
        if ex.reply is None and not self._csrf_guard.websocket_origin_allowed(view, ex.site_origin):
            self._event("websocket.refused", ex, reason="cross-site WebSocket handshake")
            ex.reply = _plain(403, "Forbidden: cross-site WebSocket handshake.\n")
        return ex

    def _warn_untrusted_forwarding(self, ex: Exchange) -> None:
        """Warn once that proxy headers arrive but no proxy is trusted (they are ignored)."""
        self._warned_forwarded = True
        self._event(
            "proxy.untrusted_forwarding",
            ex,
            reason="X-Forwarded-*/Forwarded headers ignored: set trusted_proxies if a "
            "proxy is in front of this site",
        )

    def _session_cookie(self, view: RequestView) -> str | None:
        """Find the session cookie without parsing every cookie (the first one wins).

        A browser sends the same Cookie header on every request, so the answer is
        remembered per header string (bounded).
        """
        header = view.headers.get("cookie")
        if not header:
            return None
        found = self._cookie_memo.get(header, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        found = self._find_session_cookie(header)
        if len(header) <= _MEMO_HEADER_MAX:  # huge headers are not kept: bounded memory
            if len(self._cookie_memo) >= 4096:
                self._cookie_memo.clear()
            self._cookie_memo[header] = found
        return found

    def _find_session_cookie(self, header: str) -> str | None:
        marker = self._cookie_marker
        start = header.find(marker)
        # Only at the start or after "; ": a cookie whose name merely ends with ours (a
        # sibling subdomain's "x__Host-sw_session") must not be taken for it.
        while start > 0 and header[start - 1] not in "; ":
            start = header.find(marker, start + 1)
        if start < 0:
            return None
        start += len(marker)
        end = header.find(";", start)
        value = (header[start:] if end < 0 else header[start:end]).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        return value

    def _check_csrf(self, ex: Exchange, exempt: bool) -> None:
        decision = self._csrf_guard.decide(ex.view, ex.site_origin, ex.user, exempt=exempt)
        if decision is not _CSRF_PASS:
            self._csrf_decided(ex, decision)

    def _csrf_decided(self, ex: Exchange, decision: Decision) -> None:
        if decision.needs_body:
            ex.body_handler = ex.receive_csrf_body
            return
        self._apply_csrf(ex, decision.allowed, decision.reason)

    def _apply_csrf(self, ex: Exchange, allowed: bool, reason: str | None) -> None:
        if allowed and reason is None:
            return
        if self.policy.csrf == "log-only" or allowed:
            self._event("csrf.would_refuse", ex, reason=reason)
            return
        self._event("csrf.refused", ex, reason=reason)
        ex.reply = self._csrf_guard.refusal(reason or "refused", ex.view.header("accept") or "")

    def _csrf_store_failure(self, ex: Exchange, exc: StoreError) -> None:
        """Refuse (503) an authenticator that cannot be checked, whatever the policy.

        ``on_store_failure = "open"`` keeps pages readable while the store is down; it
        must not turn into accepting unverified state-changing requests.
        """
        self._event("store.unavailable", ex, level=logging.ERROR, reason=str(exc))
        ex.user = None
        ex.session = None
        if self.policy.csrf == "log-only":  # log-only never refuses: it says so, and goes on
            self._event("csrf.would_refuse", ex, reason="authenticator not verifiable")
            return
        ex.reply = _STORE_DOWN

    def _store_failure(self, ex: Exchange, exc: StoreError) -> Exchange:
        self._event("store.unavailable", ex, level=logging.ERROR, reason=str(exc))
        if self.policy.on_store_failure == "closed":
            ex.reply = _STORE_DOWN
        ex.user = None
        ex.session = None
        return ex

    def _event(self, name: str, ex: Exchange, level: int = logging.WARNING, **fields: Any) -> None:
        events.emit(
            name,
            level,
            client=ex.origin.client,
            host=ex.origin.host,
            method=ex.view.method,
            path=ex.view.path,
            user=ex.user,
            **fields,
        )


class Exchange:
    """One request/response passing through sitewarden; the application's handle on it.

    Applications use :attr:`user`, :attr:`csp_nonce`, :meth:`csrf_token`, :meth:`login`
    and :meth:`logout`; adapters use :attr:`reply`, :attr:`body_handler` and
    :meth:`response_headers`.
    """

    __slots__ = (
        "_asgi_send",
        "_clear_cookie",
        "_login",
        "_logout",
        "_nonce",
        "body_handler",
        "extra_headers",
        "https",
        "origin",
        "reply",
        "session",
        "user",
        "view",
        "warden",
    )

    #: The server's ``send``, set by the ASGI adapter before it hands out :meth:`asgi_send`.
    _asgi_send: Callable[[MutableMapping[str, Any]], Awaitable[None]]

    def __init__(self, warden: Warden, view: RequestView, origin: Origin | RequestView) -> None:
        """Start the exchange for *view* as resolved to *origin*."""
        self.warden = warden
        self.view = view
        self.origin = origin
        self.https = origin.scheme == "https"
        #: A reply sitewarden sends instead of calling the application.
        self.reply: Reply | None = None
        #: Set when sitewarden must read the body before deciding (CSRF field, report).
        self.body_handler: Callable[[bytes], Reply | None] | None = None
        #: The signed-in user's id, or ``None``.
        self.user: str | None = None
        self.session: SessionState | None = None
        #: Further headers for the response (a limited route's RateLimit headers).
        self.extra_headers: list[tuple[str, str]] | None = None
        self._nonce: str | None = None
        self._login: str | None = None
        self._logout = False
        self._clear_cookie = False

    @property
    def site_origin(self) -> str:
        """The site's own origin for this request (``scheme://host``), as resolved."""
        return f"{self.origin.scheme}://{self.origin.host}"

    # -- for applications ------------------------------------------------------------

    @property
    def csp_nonce(self) -> str:
        """Return the response's CSP nonce (created on first use; the header then carries it)."""
        if self._nonce is None:
            self._nonce = new_nonce()
        return self._nonce

    def csrf_token(self, extra: str = "") -> str:
        """Return a fresh CSRF authenticator bound to this request's user."""
        return self.warden.csrf.token(self.user, extra)

    def login(self, userid: str) -> None:
        """Sign *userid* in: a new session ticket is set on this response."""
        if not isinstance(userid, str) or not userid:
            raise ValueError("login needs a non-empty user id")
        self._login = userid
        self._logout = False
        self.user = userid

    def logout(self, *, everywhere: bool = False) -> None:
        """Sign out: clear the cookie (and the site's data); *everywhere* ends all devices."""
        if everywhere and self.user is not None:
            self.warden.sessions.logout_everywhere(self.user)
        self._logout = True
        self._login = None
        self.user = None

    # -- for adapters ----------------------------------------------------------------

    def check_csrf(self, *, exempt: bool = False) -> Reply | None:
        """Run a deferred CSRF check; return the refusal, or ``None`` to go on.

        When the decision needs the form body, :attr:`body_handler` is set instead and the
        adapter must read the body and call it.
        """
        warden = self.warden
        if self.view.method in _SAFE_METHODS or not warden._csrf_on or self.reply:
            return self.reply
        try:
            warden._check_csrf(self, exempt)
        except StoreError as exc:
            warden._csrf_store_failure(self, exc)
        return self.reply

    def receive_report(self, body: bytes) -> Reply:
        """Handle a CSP report body (the receiver always answers itself)."""
        receiver = self.warden._reports
        assert receiver is not None
        return receiver.handle(self.view, body, self.origin.client)

    def receive_csrf_body(self, body: bytes) -> Reply | None:
        """Finish the CSRF decision with the request body (form field authenticator)."""
        warden = self.warden
        try:
            decision = warden._csrf_guard.decide_with_body(self.view, self.user, body)
        except StoreError as exc:  # the keyring could not be read: never accept unverified
            warden._csrf_store_failure(self, exc)
            return self.reply
        warden._apply_csrf(self, decision.allowed, decision.reason)
        return self.reply

    def asgi_send(self, message: MutableMapping[str, Any]) -> Awaitable[None]:
        """Pass an ASGI *message* on to the server's ``send``, its headers made safe.

        The ASGI adapter sets ``_asgi_send`` and hands this bound method to the
        application as its ``send``: a plain method returning the real send's awaitable
        (ASGI asks only for an awaitable callable), so no coroutine or closure per message.
        """
        if message["type"] == "http.response.start":
            message["headers"] = self.response_headers_bytes(message.get("headers", ()))
        return self._asgi_send(message)

    def response_headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Return the application's *headers* made safe, plus sitewarden's (text form)."""
        warden = self.warden
        remove = warden._remove
        harden = warden.policy.harden_cookies
        out: list[tuple[str, str]] = []
        present: set[str] = set()
        for name, value in headers:
            lower = name.lower()
            if lower in remove:
                continue
            if lower == "set-cookie" and harden:
                value = self._harden(value)
            present.add(lower)
            out.append((name, value))
        variant = None if not present.isdisjoint(warden._names) else self._variant_key()
        if variant is not None:
            out.extend(warden._variants[variant])
            if self.session is not None and self.session.refresh:
                out.extend(self._session_cookie_headers())
            return out
        out.extend(self._additions(present))
        return out

    def response_headers_bytes(
        self, headers: Iterable[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """Do what :meth:`response_headers` does, for ASGI's byte pairs."""
        warden = self.warden
        if type(headers) is not list:
            headers = list(headers)
        # The common response: none of the application's header names is one sitewarden
        # removes, rewrites or sets, so they all pass as they are.
        # (ASGI names are lower-case; an upper-case one is lowered, as cheap insurance.)
        touched = warden._touched_b
        for name, _ in headers:
            if name in touched or (not name.islower() and name.lower() in touched):
                break
        else:
            # _variant_key(), inlined: this runs on every response.
            session = self.session
            if (
                self._nonce is None
                and self.extra_headers is None
                and self._login is None
                and not self._logout
                and not self._clear_cookie
                and warden._cors is None
            ):
                fast = (
                    headers
                    + warden._variants_b[  # a new list: the app's stays as it was
                        (4 if self.https else 0)
                        + (2 if session is not None else 0)
                        + (self.view.method not in _SAFE_METHODS)
                    ]
                )
                if session is not None and session.refresh:
                    fast += _encode(self._session_cookie_headers())
                return fast
        remove = warden._remove_b
        harden = warden.policy.harden_cookies
        out: list[tuple[bytes, bytes]] = []
        present: set[bytes] = set()
        for name, value in headers:
            lower = name.lower()  # ASGI names are lower-case already; cheap insurance
            if lower in remove:
                continue
            if lower == b"set-cookie" and harden:
                value = self._harden(value.decode("latin-1")).encode("latin-1")
            present.add(lower)
            out.append((name, value))
        variant = None if not present.isdisjoint(warden._names_b) else self._variant_key()
        if variant is not None:
            out.extend(warden._variants_b[variant])
            if self.session is not None and self.session.refresh:
                out.extend(_encode(self._session_cookie_headers()))
            return out
        text_present = {n.decode("latin-1") for n in present}
        out.extend(_encode(self._additions(text_present)))
        return out

    def _harden(self, value: str) -> str:
        warden = self.warden
        return harden_set_cookie(
            value,
            https=self.https,
            samesite=warden.policy.cookie_samesite,
            exempt=warden._cookie_exempt,
        )

    def _variant_key(self) -> int | None:
        """Return the index of the precomputed headers that fit, or ``None`` (general path).

        The caller has checked that the application set none of the headers sitewarden
        sets (else the general path merges them).
        """
        if (
            self._nonce is not None
            or self.extra_headers is not None
            or self._login is not None
            or self._logout
            or self._clear_cookie
            or self.warden._cors is not None
        ):
            return None
        return (
            (4 if self.https else 0)
            + (2 if self.session is not None else 0)
            + (self.view.method not in _SAFE_METHODS)
        )

    def _session_cookie_headers(self) -> list[tuple[str, str]]:
        """Return the refreshed session cookie (an active session's ticket, renewed)."""
        sessions = self.warden.sessions
        assert self.session is not None
        # On a store error the current cookie stays: it is valid until its idle timeout.
        with contextlib.suppress(StoreError):
            return [("set-cookie", sessions.set_cookie(sessions.renew(self.session)))]
        return []

    def _additions(self, present: set[str]) -> list[tuple[str, str]]:
        """Sitewarden's headers for this response, skipping those the application set."""
        warden = self.warden
        add: list[tuple[str, str]] = [h for h in warden._always if h[0] not in present]
        if self.https:
            add.extend(h for h in warden._https if h[0] not in present)
        if "content-security-policy" not in present:
            csp = (
                warden._static_csp
                if self._nonce is None
                else warden.headers.csp.headers(self._nonce)
            )
            add.extend(csp)
        sessions = warden.sessions
        if self._login is not None:
            add.append(("set-cookie", sessions.set_cookie(sessions.issue(self._login))))
        elif self._logout:
            add.append(("set-cookie", sessions.clear_cookie()))
            if warden.policy.clear_site_data_on_logout and "clear-site-data" not in present:
                add.append(_CLEAR_SITE_DATA)
        elif self.session is not None and self.session.refresh:
            add.extend(self._session_cookie_headers())
        elif self._clear_cookie:
            add.append(("set-cookie", sessions.clear_cookie()))
        signed_in = self.user is not None or self._login is not None or self._logout
        if "cache-control" not in present and (
            (signed_in and warden.policy.no_store_when_signed_in) or self._nonce is not None
        ):
            add.append(_NO_STORE)  # personal pages and nonce-bearing pages are never cached
        vary = []
        if self.session is not None or self._clear_cookie:
            vary.append("Cookie")
        if self.view.method not in _SAFE_METHODS:
            vary.extend(warden._csrf_guard.vary_headers)
        if warden._cors is not None:
            for name, value in warden._cors.response_headers(self.view):
                if name == "vary":
                    vary.append(value)  # one Vary header, not several
                else:
                    add.append((name, value))
        if vary and "vary" not in present:
            add.append(("vary", ", ".join(vary)))
        if self.extra_headers is not None:
            add.extend(h for h in self.extra_headers if h[0].lower() not in present)
        return add


def _weak_sink(target: Callable[[Any, int], None], site: Warden) -> events.Sink:
    """Wrap *site*'s event sink: only its own requests' events, and none once it is gone.

    Events raised outside any request (a CLI, a background job) reach every site's sinks.
    """
    ref = weakref.ref(target)
    site_ref = weakref.ref(site)
    current = events.current_site

    def sink(record: Any, level: int) -> None:
        live = ref()
        if live is None:
            events.remove_sink(sink)
            return
        owner = current.get()
        if owner is None or owner is site_ref():
            live(record, level)

    return sink


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
