"""A sans-I/O port of the Mozilla HTTP Observatory's grader, as two releases grade.

Input: a :class:`Retrieved` — what the Observatory's retriever collects for one site: the
``http://`` and ``https://`` request chains (every response, redirects included), and the
answer to a CORS probe. Output (:func:`grade`): ``{"grade", "score", "tests",
"observatory", "algorithm_version"}`` where each of the ten tests carries the Observatory's
own result name, score modifier and pass flag.

Two releases of ``mdn/mdn-http-observatory`` are graded (:data:`OBSERVATORY_VERSIONS`):

* **1.6.3** (the default, :data:`DEFAULT_VERSION`): what the production Observatory runs;
* **1.4.8**: the ``@mdn/mdn-http-observatory`` npm package, the one release you can install
  and run yourself — the parity tests grade a corpus with it and compare.

Every difference between them is a named field of :class:`Rules` (:data:`RULES`): the
X-Frame-Options bonus, CSP values split on commas, the HTML parser (JSDOM, then
htmlparser2), and an untyped response counted as HTML by the SRI test. ``docs/scan.md``
lists them.

The port follows the package's source (``src/analyzer/tests/*.js``, ``src/analyzer/cspParser.js``,
``src/grader/*.js``, ``src/retriever/*.js``) including its quirks, because parity is the point:

* headers are seen as Node.js merges them — repeated headers joined with ``", "`` (so two
  ``Strict-Transport-Security`` headers are invalid; two CSP headers are one policy for
  1.4.8, two policies for 1.6.3), ``Set-Cookie`` kept as a list, a few (``Content-Type``,
  ``Location``…) keeping the first;
* the "auto" response is the HTTPS chain's final response when HTTPS answered, else HTTP's;
  cookies are those of the auto chain only (a ``tough-cookie`` jar: same name/domain/path
  replaces, a foreign ``Domain`` or an unsecured ``__Host-``/``__Secure-`` cookie is refused);
* the redirection test looks at the HTTP chain; the HSTS preload list is given with the
  site (:mod:`sitewarden.audit.preload`: the npm package downloads it when installed);
* SRI compares registrable domains by the public-suffix list's ICANN section (``tldts``);
* ``max-age=abc`` in HSTS parses to NaN, which the package counts as "at least six months".

Not ported: axios's JSON-parsing of bodies.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from sitewarden.audit.preload import covers

__all__ = [
    "CORS_ORIGIN",
    "DEFAULT_VERSION",
    "GRADE_CHART",
    "MINIMUM_SCORE_FOR_EXTRA_CREDIT",
    "OBSERVATORY_VERSIONS",
    "RULES",
    "SCORE_MODIFIERS",
    "TEST_NAMES",
    "Fetch",
    "Response",
    "Retrieved",
    "Rules",
    "grade",
    "grade_for_score",
    "is_ip_literal",
    "node_headers",
    "rules_for",
    "score_modifier",
    "score_modifiers",
]

#: The Origin the Observatory's CORS probe sends.
CORS_ORIGIN = "https://http-observatory.security.mozilla.org"

# -- the releases ------------------------------------------------------------------------

#: The Observatory releases :func:`grade` can grade as: production first, then the npm package.
OBSERVATORY_VERSIONS: tuple[str, ...] = ("1.6.3", "1.4.8")
#: What production runs (release v1.6.3, 2026-07-16), and so what :func:`grade` does by default.
DEFAULT_VERSION = "1.6.3"


@dataclass(frozen=True)
class Rules:
    """How one Observatory release grades: every difference between releases, by name."""

    version: str
    #: ``ALGORITHM_VERSION`` of the release (its scans report it; it changes with scoring).
    algorithm_version: int
    #: Modifier of ``x-frame-options-sameorigin-or-deny``: 0, then +5 from v1.5.0 (#332).
    xfo_sameorigin_or_deny: int
    #: CSP test only: each header and ``<meta>`` value is split on "," and every piece is a
    #: policy of its own (v1.6.2, #496) — an empty piece (a trailing comma) is invalid.
    csp_split_on_commas: bool
    #: The HTML parser of the meta tags and scripts: JSDOM, then htmlparser2 (v1.6.0,
    #: #419). What differs between them is listed in :class:`_Page`.
    html_parser: Literal["jsdom", "htmlparser2"]
    #: SRI test: a response without a Content-Type is read as HTML, not as "not HTML".
    sri_untyped_is_html: bool


#: The rules of each release of :data:`OBSERVATORY_VERSIONS`.
RULES: Mapping[str, Rules] = MappingProxyType(
    {
        "1.6.3": Rules(
            version="1.6.3",
            algorithm_version=5,
            xfo_sameorigin_or_deny=5,
            csp_split_on_commas=True,
            html_parser="htmlparser2",
            sri_untyped_is_html=True,
        ),
        "1.4.8": Rules(
            version="1.4.8",
            algorithm_version=4,
            xfo_sameorigin_or_deny=0,
            csp_split_on_commas=False,
            html_parser="jsdom",
            sri_untyped_is_html=False,
        ),
    }
)


def rules_for(version: str = DEFAULT_VERSION) -> Rules:
    """Return the :class:`Rules` of *version*; :class:`ValueError` for an unknown one."""
    try:
        return RULES[version]
    except KeyError:
        known = ", ".join(OBSERVATORY_VERSIONS)
        raise ValueError(f"unknown Observatory version {version!r} (known: {known})") from None


#: Score modifier of every result, as every release has it (``SCORE_TABLE`` of
#: src/grader/charts.js); the modifiers that differ come from :class:`Rules`.
_SHARED_MODIFIERS: dict[str, int] = {
    "csp-implemented-with-no-unsafe-default-src-none": 10,
    "csp-implemented-with-no-unsafe": 5,
    "csp-implemented-with-unsafe-inline-in-style-src-only": 0,
    "csp-implemented-with-insecure-scheme-in-passive-content-only": -10,
    "csp-implemented-with-unsafe-eval": -10,
    "csp-implemented-with-unsafe-inline": -20,
    "csp-implemented-with-insecure-scheme": -20,
    "csp-header-invalid": -25,
    "csp-not-implemented": -25,
    "csp-not-implemented-but-reporting-enabled": -25,
    "csp-implemented-but-duplicate-directives": 0,
    "cookies-secure-with-httponly-sessions-and-samesite": 5,
    "cookies-secure-with-httponly-sessions": 0,
    "cookies-not-found": 0,
    "cookies-without-secure-flag-but-protected-by-hsts": -5,
    "cookies-session-without-secure-flag-but-protected-by-hsts": -10,
    "cookies-without-secure-flag": -20,
    "cookies-samesite-flag-invalid": -20,
    "cookies-anticsrf-without-samesite-flag": -20,
    "cookies-session-without-httponly-flag": -30,
    "cookies-session-without-secure-flag": -40,
    "cross-origin-resource-sharing-not-implemented": 0,
    "cross-origin-resource-sharing-implemented-with-public-access": 0,
    "cross-origin-resource-sharing-implemented-with-restricted-access": 0,
    "cross-origin-resource-sharing-implemented-with-universal-access": -50,
    "redirection-all-redirects-preloaded": 0,
    "redirection-to-https": 0,
    "redirection-not-needed-no-http": 0,
    "redirection-off-host-from-http": -5,
    "redirection-not-to-https-on-initial-redirection": -10,
    "redirection-not-to-https": -20,
    "redirection-missing": -20,
    "redirection-invalid-cert": -20,
    "referrer-policy-private": 5,
    "referrer-policy-not-implemented": 0,
    "referrer-policy-unsafe": -5,
    "referrer-policy-header-invalid": -5,
    "hsts-preloaded": 5,
    "hsts-implemented-max-age-at-least-six-months": 0,
    "hsts-implemented-max-age-less-than-six-months": -10,
    "hsts-not-implemented": -20,
    "hsts-header-invalid": -20,
    "hsts-not-implemented-no-https": -20,
    "hsts-invalid-cert": -20,
    "sri-implemented-and-all-scripts-loaded-securely": 5,
    "sri-implemented-and-external-scripts-loaded-securely": 5,
    "sri-not-implemented-response-not-html": 0,
    "sri-not-implemented-but-no-scripts-loaded": 0,
    "sri-not-implemented-but-all-scripts-loaded-from-secure-origin": 0,
    "sri-not-implemented-but-external-scripts-loaded-securely": -5,
    "sri-implemented-but-external-scripts-not-loaded-securely": -20,
    "sri-not-implemented-and-external-scripts-not-loaded-securely": -50,
    "x-content-type-options-nosniff": 0,
    "x-content-type-options-not-implemented": -5,
    "x-content-type-options-header-invalid": -5,
    "x-frame-options-implemented-via-csp": 5,
    "x-frame-options-allow-from-origin": 0,
    "x-frame-options-not-implemented": -20,
    "x-frame-options-header-invalid": -20,
    "corp-header-invalid": -5,
    "corp-implemented-with-cross-origin": 0,
    "corp-implemented-with-same-origin": 10,
    "corp-implemented-with-same-site": 10,
    "corp-not-implemented": 0,
    "html-not-parseable": -20,
}


def score_modifiers(version: str = DEFAULT_VERSION) -> Mapping[str, int]:
    """Return the score modifier of every result as release *version* has them."""
    return _SCORE_TABLES[rules_for(version).version]


def score_modifier(result: str, version: str = DEFAULT_VERSION) -> int:
    """Return the score modifier of *result* for release *version* (0 for an unknown result)."""
    return score_modifiers(version).get(result, 0)


_SCORE_TABLES: dict[str, Mapping[str, int]] = {
    r.version: MappingProxyType(
        {**_SHARED_MODIFIERS, "x-frame-options-sameorigin-or-deny": r.xfo_sameorigin_or_deny}
    )
    for r in RULES.values()
}

#: Score modifier of every result for production (:data:`DEFAULT_VERSION`); see
#: :func:`score_modifiers` for the other release.
SCORE_MODIFIERS: dict[str, int] = dict(_SCORE_TABLES[DEFAULT_VERSION])

#: Score (a multiple of 5, at most 100) → grade (``GRADE_CHART``).
GRADE_CHART: dict[int, str] = {
    100: "A+", 95: "A", 90: "A", 85: "A-", 80: "B+", 75: "B", 70: "B", 65: "B-", 60: "C+",
    55: "C", 50: "C", 45: "C-", 40: "D+", 35: "D", 30: "D", 25: "D-",
    20: "F", 15: "F", 10: "F", 5: "F", 0: "F",
}  # fmt: skip

#: Bonuses count only when the score with penalties alone is at least this (≤ 10 points lost).
MINIMUM_SCORE_FOR_EXTRA_CREDIT = 90

#: The ten tests, in the scanner's order.
TEST_NAMES: tuple[str, ...] = (
    "content-security-policy",
    "cookies",
    "cross-origin-resource-sharing",
    "redirection",
    "referrer-policy",
    "strict-transport-security",
    "subresource-integrity",
    "x-content-type-options",
    "x-frame-options",
    "cross-origin-resource-policy",
)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

# -- input ------------------------------------------------------------------------------


@dataclass
class Response:
    """One HTTP response: the URL requested, status, raw headers (in order), body."""

    url: str
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""


@dataclass
class Fetch:
    """One GET that follows redirects: every response in order (the last is the final one)."""

    url: str
    chain: list[Response]
    #: Whether TLS was verified (False: the retriever fell back to an unverified connection).
    verified: bool = True

    @property
    def final(self) -> Response:
        """The last response of the chain."""
        return self.chain[-1]


@dataclass
class Retrieved:
    """What the retriever collected for one host (``Requests`` of the npm package)."""

    hostname: str
    http: Fetch | None
    https: Fetch | None
    #: The answer to ``OPTIONS`` with ``Origin: CORS_ORIGIN`` on the auto chain's final URL.
    cors: Response | None = None
    #: The HSTS preload list: host names with their ``include_subdomains`` flag, or a
    #: function saying whether a host is preloaded (:class:`~sitewarden.audit.preload.HstsPreload`).
    preload: Mapping[str, bool] | Callable[[str], bool] = field(default_factory=dict)
    #: Responses whose cookies also reach the jar: the ``/robots.txt`` chain, which the
    #: package fetches through its cookie-recording client only after falling back to an
    #: unverified connection (with a verified one, robots.txt cookies are not seen).
    extra_cookie_responses: list[Response] = field(default_factory=list)

    @property
    def auto(self) -> Fetch | None:
        """The chain the scanner grades: HTTPS when it answered, else HTTP."""
        return self.https if self.https is not None else self.http


# -- Node.js's view of headers ----------------------------------------------------------

_NODE_FIRST_ONLY = frozenset(
    {
        "age", "authorization", "content-length", "content-type", "etag", "expires", "from",
        "host", "if-modified-since", "if-unmodified-since", "last-modified", "location",
        "max-forwards", "proxy-authorization", "referer", "retry-after", "server", "user-agent",
    }
)  # fmt: skip


def node_headers(raw: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Merge raw headers as Node.js's ``IncomingMessage.headers`` does."""
    out: dict[str, Any] = {}
    for name, value in raw:
        key = name.lower()
        if key == "set-cookie":
            out.setdefault(key, []).append(value)
        elif key not in out:
            out[key] = value
        elif key in _NODE_FIRST_ONLY:
            continue
        elif key == "cookie":
            out[key] += "; " + value
        else:
            out[key] += ", " + value
    return out


def _headers(response: Response | None, name: str) -> list[str]:
    if response is None:
        return []
    value = node_headers(response.headers).get(name.lower())
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _first(response: Response | None, name: str) -> str | None:
    values = _headers(response, name)
    return values[0] if values else None


# -- HTML -------------------------------------------------------------------------------


#: Elements whose content both parsers read as text, not markup (the HTML standard's raw
#: text and RCDATA elements): a ``<script>`` inside ``<textarea>`` is no script.
_RAW_TEXT = frozenset(
    {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "plaintext"}
)
#: Foreign (SVG, MathML) content: JSDOM's ``<script>`` there has no ``src`` property.
_FOREIGN = frozenset({"svg", "math"})


class _Page(HTMLParser):
    """Collect ``<meta>`` and ``<script>`` attributes as the release's HTML parser sees them.

    Both parsers read the content of :data:`_RAW_TEXT` elements as text, keep the first of
    duplicated attributes and decode entities in values. Then they differ (*jsdom* True is
    JSDOM, the parser up to v1.5; False is htmlparser2, from v1.6.0):

    * JSDOM keeps ``<template>`` content out of the document: its scripts and metas are not
      found; htmlparser2 sees every tag;
    * JSDOM parses the metas as a fragment with scripting on, where ``<noscript>`` content is
      text: a meta inside ``<noscript>`` is not found (its scripts, parsed as a document
      with scripting off, are);
    * JSDOM ignores the ``/`` of ``<script src=…/>``, so what follows is script text until
      ``</script>``; htmlparser2 leaves raw-text mode at the ``/>``;
    * an SVG or MathML ``<script>`` counts as a script for both, but JSDOM gives it no
      ``src``; htmlparser2 gives its ``src`` attribute like any other.
    """

    def __init__(self, jsdom: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.metas: list[dict[str, str]] = []
        self.scripts: list[dict[str, str]] = []
        self._jsdom = jsdom
        self._depth = {"template": 0, "noscript": 0, "foreign": 0}

    def _element(self, tag: str) -> str | None:
        """Return the JSDOM depth counter *tag* opens or closes, if any."""
        if not self._jsdom:
            return None
        if tag in _FOREIGN:
            return "foreign"
        return tag if tag in ("template", "noscript") else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        counter = self._element(tag)
        if counter is not None:
            self._depth[counter] += 1
        if tag in _RAW_TEXT:
            # html.parser knows only script and style: the others' content is text too.
            self.set_cdata_mode(tag)
        if self._depth["template"] or tag not in ("meta", "script"):
            return
        found: dict[str, str] = {}
        for key, value in attrs:
            found.setdefault(key, value or "")  # the first of duplicated attributes wins
        if tag == "meta":
            if not self._depth["noscript"]:
                self.metas.append(found)
            return
        if self._depth["foreign"]:
            found.pop("src", None)
        self.scripts.append(found)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._jsdom:
            # htmlparser2 opens the element and reads on as markup, even after <script/>.
            self._record(tag, attrs)
        elif self._depth["foreign"] or tag in _FOREIGN:
            self._record(tag, attrs)  # foreign content honours "/>": nothing stays open
        else:
            self.handle_starttag(tag, attrs)  # HTML ignores the "/" of a non-void element

    def _record(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        counter = self._element(tag)
        self.handle_starttag(tag, attrs)
        if counter is not None:
            self._depth[counter] -= 1
        if tag in _RAW_TEXT:
            self.clear_cdata_mode()

    def handle_endtag(self, tag: str) -> None:
        counter = self._element(tag)
        if counter is not None and self._depth[counter]:
            self._depth[counter] -= 1


def _parse_page(body: str, rules: Rules) -> _Page:
    page = _Page(jsdom=rules.html_parser == "jsdom")
    with contextlib.suppress(Exception):  # html.parser is lenient; keep what was found
        page.feed(body)
        page.close()
    return page


def _http_equiv(page: _Page) -> dict[str, list[str]]:
    """``parseHttpEquivHeaders`` (src/retriever/utils.js)."""
    equiv: dict[str, list[str]] = {"content-security-policy": []}
    for meta in page.metas:
        if "http-equiv" in meta and "content" in meta:
            if meta["content"] and meta["http-equiv"].lower().strip() == "content-security-policy":
                equiv["content-security-policy"].append(meta["content"])
        elif meta.get("name", "").lower().strip() == "referrer" and meta.get("content"):
            equiv["referrer-policy"] = [meta["content"]]
    return equiv


# -- the CSP parser (src/analyzer/cspParser.js) ----------------------------------------

_COLLATION = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789abcdefghijklmnopqrstuvwxyz"
_COLLATION_RANK = {c: i for i, c in enumerate(_COLLATION)}
_DUPLICATE_WARNINGS_KEY = "_observatory_duplicate_key_warnings"
_DISALLOWED_IN_META = ("frame-ancestors", "report-uri", "sandbox")
_ALLOWED_DUPLICATES = frozenset({"report-uri", "report-to"})


def _collation_key(text: str) -> list[tuple[int, int]]:
    """Approximate ``Intl.Collator("en").compare`` for lowercased ASCII sources."""
    return [(_COLLATION_RANK.get(c, 1000), ord(c)) for c in text]


class CspError(ValueError):
    """The policy is invalid (the package's parser throws)."""


@dataclass
class _Source:
    source: str
    index: int
    keep: bool


def _decode_uri_component(text: str) -> str:
    """``decodeURIComponent``, which throws on a malformed escape."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            hexpart = text[i + 1 : i + 3]
            if len(hexpart) != 2 or not all(c in "0123456789abcdefABCDEF" for c in hexpart):
                raise CspError("URIError: malformed URI sequence")
            out.append(int(hexpart, 16))
            i += 3
        else:
            out += text[i].encode()
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise CspError("URIError: malformed URI sequence") from None


def _path_part_match(a: str, b: str) -> bool:
    if not a:
        return True
    if a == "/" and not b:
        return True
    exact = not a.endswith("/")
    list_a, list_b = a.split("/"), b.split("/")
    if len(list_a) > len(list_b):
        return False
    if exact and len(list_a) != len(list_b):
        return False
    if not exact:
        list_a.pop()
    return all(
        _decode_uri_component(x) == _decode_uri_component(y)
        for x, y in zip(list_a, list_b, strict=False)
    )


def parse_csp(policies: list[str]) -> dict[str, set[str]]:
    """``parseCsp``: directive → sources; raises :class:`CspError` for an invalid policy."""
    clean = [re.sub(r"[\r\n]", "", p).strip() for p in policies]
    if not clean:
        return {}
    for policy in clean:
        if not policy or len(policy) < 6:
            raise CspError(f"Invalid policy: {policy}")
    csp: dict[str, list[_Source]] = {}
    warnings: set[str] = set()
    for index, policy in enumerate(clean):
        seen: set[str] = set()
        for entry in policy.split(";"):
            parts = entry.strip().split()
            if not parts or not parts[0]:
                continue
            directive, values_raw = parts[0].lower(), parts[1:]
            if directive in seen:
                if directive in _ALLOWED_DUPLICATES:
                    warnings.add(directive)
                else:
                    raise CspError(f"Duplicate directive {directive} in policy {index}")
            else:
                seen.add(directive)
            keep = index == 0
            values = [_Source(v.strip().lower(), index, keep) for v in values_raw]
            if not values and directive.endswith("-src"):
                values = [_Source("'none'", index, keep)]
            combined = list(values) if index == 0 else [*csp.get(directive, []), *values]
            combined.sort(key=lambda s: _collation_key(s.source))
            for i in range(1, len(combined)):
                source, prev = combined[i], combined[i - 1]
                if source.index == prev.index and source.source.startswith(prev.source):
                    source.keep = False
                if source.index != prev.index and _path_part_match(prev.source, source.source):
                    source.keep = True
            csp[directive] = [s for s in combined if s.keep]
            if index == 0 and len(policies) > 1:
                for s in csp[directive]:
                    s.keep = False
    final: dict[str, set[str]] = {
        d: ({s.source for s in sources} if sources else {"'none'"}) for d, sources in csp.items()
    }
    if warnings:
        final[_DUPLICATE_WARNINGS_KEY] = warnings
    return final


def _parse_csp_meta(policies: list[str]) -> dict[str, set[str]]:
    parsed = parse_csp(policies)
    for directive in _DISALLOWED_IN_META:
        parsed.pop(directive, None)
    return parsed


# -- the tests --------------------------------------------------------------------------

_BROAD = frozenset(
    {"ftp:", "http:", "https:", "*", "http://*", "http://*.*", "https://*", "https://*.*"}
)
_UNSAFE_INLINE = frozenset({"'unsafe-inline'", "data:"})
_BROAD_OR_INLINE = _BROAD | _UNSAFE_INLINE
_PASSIVE = ("img-src", "media-src")
_NONCES_HASHES = ("'sha256-", "'sha384-", "'sha512-", "'nonce-")


@dataclass
class _Result:
    result: str | None = None
    passed: bool = False
    data: Any = None


class _Context:
    """The retrieved site seen as the package's analyzers see it, under a release's rules."""

    def __init__(self, site: Retrieved, rules: Rules) -> None:
        self.site = site
        self.rules = rules
        auto = site.auto
        self.auto: Response | None = auto.final if auto else None
        self.session_url = auto.url if auto else None
        self.page_text = self.auto.body if self.auto else None
        self.equiv: dict[str, list[str]] = {}
        self.page: _Page | None = None
        if self.auto is not None:
            content_type = node_headers(self.auto.headers).get("content-type") or ""
            # Meta tags are read only from a page typed as HTML, in every release.
            if content_type.split(";")[0] in HTML_TYPES and self.page_text:
                self.page = _parse_page(self.page_text, rules)
                self.equiv = _http_equiv(self.page)

    def preloaded(self, hostname: str) -> bool:
        preload = self.site.preload
        return preload(hostname) if callable(preload) else covers(preload, hostname)


def _csp_policies(values: list[str], rules: Rules) -> list[str]:
    """Return the policies of CSP header (or meta) *values* (from v1.6.2, split on commas)."""
    if not rules.csp_split_on_commas:
        return values
    # Not filtered: an empty piece ("default-src 'none',") makes the parser throw.
    return [piece.strip() for value in values for piece in value.split(",")]


def _csp_test(ctx: _Context) -> _Result:
    out = _Result()
    response, url = ctx.auto, ctx.session_url
    if response is None or url is None:
        out.result = "csp-not-implemented"
        return out
    http_csp = _csp_policies(_headers(response, "content-security-policy"), ctx.rules)
    equiv_csp = _csp_policies(ctx.equiv.get("content-security-policy", []), ctx.rules)
    try:
        csp = parse_csp([*http_csp, *equiv_csp])
    except CspError:
        out.result = "csp-header-invalid"
        return out
    try:
        header_only = parse_csp(http_csp)
    except CspError:
        header_only = {}
    try:
        meta_csp = _parse_csp_meta(equiv_csp)
    except CspError:
        meta_csp = {}
    if len(header_only) + len(meta_csp) == 0:
        report_only = _first(response, "content-security-policy-report-only")
        out.result = (
            "csp-not-implemented-but-reporting-enabled" if report_only else "csp-not-implemented"
        )
        return out

    def get(directive: str, *fallbacks: str) -> set[str]:
        for name in (directive, *fallbacks):
            if name in csp:
                return csp[name]  # the same set object, as in the package (mutations show)
        return {"*"}

    frame_ancestors = header_only.get("frame-ancestors", {"*"})
    base_uri = get("base-uri")
    form_action = get("form-action")
    object_src = get("object-src", "default-src")
    script_src = get("script-src", "default-src")
    style_src = get("style-src", "default-src")

    def has_nonce_hash(sources: Iterable[str]) -> bool:
        return any(s.startswith(_NONCES_HASHES) for s in sources)

    for sources in (script_src, style_src):
        if has_nonce_hash(sources) and "'unsafe-inline'" in sources:
            sources.discard("'unsafe-inline'")

    if has_nonce_hash(script_src) and "'strict-dynamic'" in script_src:
        for source in list(script_src):
            if (
                any(source.startswith(b) for b in _BROAD)
                or source == "'self'"
                or source == "'unsafe-inline'"
            ):
                script_src.discard(source)
    elif "'strict-dynamic'" in script_src and out.result is None:
        out.result = "csp-header-invalid"

    active = [
        s for d, sources in csp.items() if d not in _PASSIVE and d != "script-src" for s in sources
    ]
    active += list(script_src)
    passive = [s for d in _PASSIVE for s in (csp.get(d) or csp.get("default-src") or set())]
    https = urlsplit(url).scheme == "https"

    def first(result: str) -> None:
        if out.result is None:
            out.result = result

    if any(s in _BROAD_OR_INLINE for s in script_src) or any(s in _BROAD for s in object_src):
        first("csp-implemented-with-unsafe-inline")
    if https and any(s.startswith(("http:", "ftp:")) for s in active):
        first("csp-implemented-with-insecure-scheme")
    if "'unsafe-eval'" in script_src | style_src:
        first("csp-implemented-with-unsafe-eval")
    if https and any(s.startswith(("http:", "ftp:")) for s in passive):
        first("csp-implemented-with-insecure-scheme-in-passive-content-only")
    if any(s in _BROAD_OR_INLINE for s in style_src):
        first("csp-implemented-with-unsafe-inline-in-style-src-only")
    default_src = csp.get("default-src")
    if default_src is not None and "'none'" in default_src and len(default_src) == 1:
        first("csp-implemented-with-no-unsafe-default-src-none")
    else:
        first("csp-implemented-with-no-unsafe")
    del frame_ancestors, base_uri, form_action  # the package computes them for its report only

    if out.result in (
        "csp-implemented-with-no-unsafe",
        "csp-implemented-with-no-unsafe-default-src-none",
        "csp-implemented-with-unsafe-inline-in-style-src-only",
        "csp-implemented-with-insecure-scheme-in-passive-content-only",
    ):
        out.passed = True
        if _DUPLICATE_WARNINGS_KEY in csp:
            out.result = "csp-implemented-but-duplicate-directives"
    out.data = {k: sorted(v) for k, v in csp.items() if k != _DUPLICATE_WARNINGS_KEY}
    return out


def _invalid_samesite(raw: str) -> bool:
    for part in raw.strip().split(";"):
        pieces = part.strip().split("=")
        key = pieces[0]
        value = pieces[1] if len(pieces) > 1 else None
        if key.strip().lower() == "samesite":
            if not value:
                return True
            if value.strip().lower() not in ("lax", "strict", "none"):
                return True
    return False


@dataclass
class _Cookie:
    key: str
    domain: str
    path: str
    secure: bool = False
    http_only: bool = False
    same_site: str | None = None


def _default_path(url: str) -> str:
    path = urlsplit(url).path
    if not path.startswith("/") or path.count("/") <= 1:
        return "/"
    return path[: path.rindex("/")]


def is_ip_literal(host: str) -> bool:
    """Return whether *host* is an IP address (IPv6 with or without brackets), not a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _parse_cookie(raw: str, url: str) -> _Cookie | None:
    """Store *raw* as tough-cookie's ``setCookie`` does; None when it would refuse it."""
    pieces = raw.split(";")
    first = pieces[0]
    if "=" not in first:
        return None
    key = first.split("=", 1)[0].strip()
    if not key:
        return None
    host = (urlsplit(url).hostname or "").lower()
    cookie = _Cookie(key=key, domain=host, path=_default_path(url))
    for attr in pieces[1:]:
        name, _, value = attr.partition("=")
        name, value = name.strip().lower(), value.strip()
        if name == "secure":
            cookie.secure = True
        elif name == "httponly":
            cookie.http_only = True
        elif name == "samesite":
            low = value.lower()
            cookie.same_site = low if low in ("strict", "lax", "none") else None
        elif name == "path":
            cookie.path = value if value.startswith("/") else _default_path(url)
        elif name == "domain" and value:
            domain = value.lstrip(".").lower()
            if domain != host and (is_ip_literal(host) or not host.endswith("." + domain)):
                return None
            cookie.domain = domain
    if key.startswith("__Secure-") and not cookie.secure:
        return None
    if key.startswith("__Host-") and not (cookie.secure and cookie.path == "/"):
        return None
    return cookie


def _jar(ctx: _Context) -> list[_Cookie]:
    auto = ctx.site.auto
    jar: dict[tuple[str, str, str], _Cookie] = {}
    for response in [*(auto.chain if auto else []), *ctx.site.extra_cookie_responses]:
        for raw in _headers(response, "set-cookie"):
            cookie = _parse_cookie(raw, response.url)
            if cookie is not None:
                jar[(cookie.key, cookie.domain, cookie.path)] = cookie
    return [c for c in jar.values() if c.key and c.key != "heroku-session-affinity"]


_COOKIE_ORDER = (
    "cookies-without-secure-flag-but-protected-by-hsts",
    "cookies-without-secure-flag",
    "cookies-session-without-secure-flag-but-protected-by-hsts",
    "cookies-samesite-flag-invalid",
    "cookies-anticsrf-without-samesite-flag",
    "cookies-session-without-httponly-flag",
    "cookies-session-without-secure-flag",
)


def _worse(new: str, old: str | None, order: tuple[str, ...]) -> str:
    if old is None:
        return new

    def rank(r: str) -> int:
        return order.index(r) if r in order else -1

    return new if rank(new) > rank(old) else old


def _cookies_test(ctx: _Context) -> _Result:
    out = _Result()
    hsts = _hsts_test(ctx).passed
    if ctx.auto is not None:
        for raw in _headers(ctx.auto, "set-cookie"):
            if _invalid_samesite(raw):
                out.result = _worse("cookies-samesite-flag-invalid", out.result, _COOKIE_ORDER)
    cookies = _jar(ctx)
    missing_samesite = False
    if not cookies:
        out.result = "cookies-not-found"
    else:
        for cookie in cookies:
            name = cookie.key.lower()
            session = "login" in name or "sess" in name
            anticsrf = "csrf" in name
            found: list[str] = []
            if not cookie.secure and cookie.same_site == "none":
                found.append("cookies-samesite-flag-invalid")
            if not cookie.secure:
                found.append(
                    "cookies-without-secure-flag-but-protected-by-hsts"
                    if hsts
                    else "cookies-without-secure-flag"
                )
            if anticsrf and not cookie.same_site:
                found.append("cookies-anticsrf-without-samesite-flag")
            if session and not cookie.secure:
                found.append(
                    "cookies-session-without-secure-flag-but-protected-by-hsts"
                    if hsts
                    else "cookies-session-without-secure-flag"
                )
            if session and not cookie.http_only:
                found.append("cookies-session-without-httponly-flag")
            for result in found:
                out.result = _worse(result, out.result, _COOKIE_ORDER)
            if not cookie.same_site:
                missing_samesite = True
        if out.result is None:
            out.result = (
                "cookies-secure-with-httponly-sessions"
                if missing_samesite
                else "cookies-secure-with-httponly-sessions-and-samesite"
            )
    out.passed = out.result in (
        "cookies-not-found",
        "cookies-secure-with-httponly-sessions-and-samesite",
        "cookies-secure-with-httponly-sessions",
    )
    return out


def _cors_test(ctx: _Context) -> _Result:
    out = _Result(result="cross-origin-resource-sharing-not-implemented")
    acao = _first(ctx.site.cors, "access-control-allow-origin")
    if ctx.site.cors is not None and acao:
        data = acao[:256].strip().lower()
        if data == "*":
            out.result = "cross-origin-resource-sharing-implemented-with-public-access"
        else:
            # The package reads the probe's Origin from axios's `response.request`, a Node
            # ClientRequest without a `headers` property: the Origin is never found, so
            # "universal access" (Origin echoed with credentials) is never reported.
            out.result = "cross-origin-resource-sharing-implemented-with-restricted-access"
    out.passed = True
    return out


def _redirection_test(ctx: _Context) -> _Result:
    out = _Result()
    http = ctx.site.http
    if http is None:
        out.result = "redirection-not-needed-no-http"
    elif not http.verified:
        out.result = "redirection-invalid-cert"
    else:
        route = [urlsplit(r.url) for r in http.chain]
        if all(ctx.preloaded(r.hostname or "") for r in route):
            out.result = "redirection-all-redirects-preloaded"
        elif len(route) == 1:
            out.result = "redirection-missing"
        elif route[-1].scheme != "https":
            out.result = "redirection-not-to-https"
        elif route[1].scheme == "http":
            out.result = "redirection-not-to-https-on-initial-redirection"
        elif (
            route[0].scheme == "http"
            and route[1].scheme == "https"
            and route[0].hostname != route[1].hostname
        ):
            out.result = "redirection-off-host-from-http"
        else:
            out.result = "redirection-to-https"
    out.passed = out.result in (
        "redirection-not-needed-no-http",
        "redirection-all-redirects-preloaded",
        "redirection-to-https",
    )
    return out


_REFERRER_GOOD = ("no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin")
_REFERRER_BAD = ("origin", "origin-when-cross-origin", "unsafe-url", "no-referrer-when-downgrade")


def _referrer_test(ctx: _Context) -> _Result:
    out = _Result()
    if ctx.auto is None:
        out.result = "referrer-policy-not-implemented"
        return out
    values = [*_headers(ctx.auto, "referrer-policy"), *ctx.equiv.get("referrer-policy", [])]
    if not values:
        out.result = "referrer-policy-not-implemented"
        out.passed = True
        return out
    data = ", ".join(values)
    valid = [
        e.lower().strip()
        for e in data.split(",")
        if e.lower().strip() in _REFERRER_GOOD + _REFERRER_BAD
    ]
    policy = valid[-1] if valid else ""
    if policy in _REFERRER_GOOD:
        out.result = "referrer-policy-private"
    elif policy in _REFERRER_BAD:
        out.result = "referrer-policy-unsafe"
    else:
        out.result = "referrer-policy-header-invalid"
    out.passed = out.result in ("referrer-policy-private", "referrer-policy-not-implemented")
    return out


_SIX_MONTHS = 15552000
_PARSE_INT = re.compile(r"\s*([+-]?\d+)")


def _parse_int(text: str) -> float:
    """JavaScript's ``parseInt(text, 10)``: NaN when no digits lead."""
    found = _PARSE_INT.match(text)
    return float(found[1]) if found else float("nan")


def _hsts_test(ctx: _Context) -> _Result:
    out = _Result(result="hsts-not-implemented")
    https = ctx.site.https
    response = https.final if https else None
    if https is None or response is None:
        out.result = "hsts-not-implemented-no-https"
    elif not https.verified:
        out.result = "hsts-invalid-cert"
    elif _headers(response, "strict-transport-security"):
        data = _headers(response, "strict-transport-security")[0][:1024]
        max_age: float | None = None
        if "," in data:
            out.result = "hsts-header-invalid"
        else:
            for parameter in (p.strip().lower() for p in data.split(";")):
                if parameter.startswith("max-age="):
                    max_age = _parse_int(parameter[8:128])
            if max_age is None:
                out.result = "hsts-header-invalid"
            elif max_age < _SIX_MONTHS:  # NaN compares False: "at least six months"
                out.result = "hsts-implemented-max-age-less-than-six-months"
            else:
                out.result = "hsts-implemented-max-age-at-least-six-months"
    if response is not None and ctx.preloaded(ctx.site.hostname):
        out.result = "hsts-preloaded"
    out.passed = out.result in ("hsts-implemented-max-age-at-least-six-months", "hsts-preloaded")
    return out


_SRI_ORDER = (
    "sri-implemented-and-all-scripts-loaded-securely",
    "sri-implemented-and-external-scripts-loaded-securely",
    "sri-implemented-but-external-scripts-not-loaded-securely",
    "sri-not-implemented-but-external-scripts-loaded-securely",
    "sri-not-implemented-and-external-scripts-not-loaded-securely",
    "sri-not-implemented-response-not-html",
)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@functools.cache
def _suffixes() -> PublicSuffixList:
    # tldts (the package's parser) uses the ICANN section only by default, and treats an
    # unknown top-level label as a public suffix: so does this.
    return PublicSuffixList(only_icann=True, accept_unknown=True)


def _registrable_domain(host: str | None) -> str | None:
    """Return tldts's ``domain``: the registrable domain by the public-suffix list."""
    if not host or is_ip_literal(host):
        return None
    name = host.lower().rstrip(".")
    if not name or ".." in name:
        return None
    domain = _suffixes().privatesuffix(name)
    return domain if isinstance(domain, str) else None


def _script_src(raw: str) -> str:
    """JSDOM's reflected ``script.src`` on a document at about:blank."""
    value = raw.strip(" \t\n\r\f")
    if not _SCHEME.match(value):
        return raw  # relative: cannot be resolved against about:blank
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and not value[len(scheme) + 1 :].startswith("//"):
        value = f"{scheme}://{value[len(scheme) + 1 :].lstrip('/')}"
        parts = urlsplit(value)
    if parts.netloc:
        return parts._replace(scheme=scheme, netloc=parts.netloc.lower()).geturl()
    return value


def _sri_test(ctx: _Context) -> _Result:
    out = _Result()
    resp = ctx.auto
    if resp is None:
        out.result = "sri-not-implemented-but-no-scripts-loaded"
        return out
    mime = (_first(resp, "content-type") or "").split(";")[0]
    untyped_html = not mime and ctx.rules.sri_untyped_is_html
    if mime not in HTML_TYPES and not untyped_html:
        out.result = "sri-not-implemented-response-not-html"
    else:
        page = ctx.page or _parse_page(ctx.page_text or "", ctx.rules)
        jsdom = ctx.rules.html_parser == "jsdom"
        foreign = False
        site_domain = _registrable_domain(ctx.site.hostname)
        session_https = urlsplit(ctx.session_url or "").scheme == "https"
        for script in page.scripts:
            # JSDOM reflects `script.src` as a URL; htmlparser2 gives the attribute as is.
            raw = script.get("src", "")
            src = _script_src(raw) if jsdom and raw else raw
            if not src:
                continue
            integrity = script.get("integrity") or None
            relative_origin = relative_protocol = same_sld = False
            if re.match(r"^(//)[^/]", src):
                relative_protocol = same_sld = True
            elif re.match(r"^https?://", src):
                same_sld = _registrable_domain(urlsplit(src).hostname) == site_domain
            else:
                relative_origin = same_sld = True
            secure_origin = relative_origin or (same_sld and not relative_protocol)
            if not secure_origin:
                foreign = True
            scheme = None
            if not relative_protocol and not relative_origin:
                scheme = urlsplit(src).scheme
            secure_scheme = scheme == "https" or (relative_origin and session_https)
            if not secure_origin:
                if integrity and not secure_scheme:
                    new = "sri-implemented-but-external-scripts-not-loaded-securely"
                elif not integrity and secure_scheme:
                    new = "sri-not-implemented-but-external-scripts-loaded-securely"
                elif not integrity:
                    new = "sri-not-implemented-and-external-scripts-not-loaded-securely"
                else:
                    continue
                out.result = _worse(new, out.result, _SRI_ORDER)
            elif integrity and secure_scheme and out.result is None:
                out.result = "sri-implemented-and-all-scripts-loaded-securely"
        if not page.scripts:
            out.result = "sri-not-implemented-but-no-scripts-loaded"
        elif out.result is None:
            out.result = (
                "sri-implemented-and-external-scripts-loaded-securely"
                if foreign
                else "sri-not-implemented-but-all-scripts-loaded-from-secure-origin"
            )
    out.passed = out.result in (
        "sri-implemented-and-all-scripts-loaded-securely",
        "sri-implemented-and-external-scripts-loaded-securely",
        "sri-not-implemented-response-not-html",
        "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
        "sri-not-implemented-but-no-scripts-loaded",
    )
    return out


def _xcto_test(ctx: _Context) -> _Result:
    out = _Result(result="x-content-type-options-not-implemented")
    header = _first(ctx.auto, "x-content-type-options")
    if header:
        nosniff = header[:256].strip().lower() == "nosniff"
        out.result = (
            "x-content-type-options-nosniff" if nosniff else "x-content-type-options-header-invalid"
        )
    out.passed = out.result == "x-content-type-options-nosniff"
    return out


def _xfo_test(ctx: _Context) -> _Result:
    out = _Result(result="x-frame-options-not-implemented")
    if ctx.auto is None:
        return out
    header = _first(ctx.auto, "x-frame-options")
    if header:
        xfo = header[:1024].strip().lower()
        if xfo in ("deny", "sameorigin"):
            out.result = "x-frame-options-sameorigin-or-deny"
        elif xfo.startswith("allow-from"):
            out.result = "x-frame-options-allow-from-origin"
        else:
            out.result = "x-frame-options-header-invalid"
    csp = _csp_test(ctx)
    if csp.data and "frame-ancestors" in csp.data:
        out.result = "x-frame-options-implemented-via-csp"
    out.passed = out.result in (
        "x-frame-options-allow-from-origin",
        "x-frame-options-sameorigin-or-deny",
        "x-frame-options-implemented-via-csp",
    )
    return out


def _corp_test(ctx: _Context) -> _Result:
    out = _Result(result="corp-not-implemented")
    header = _first(ctx.auto, "cross-origin-resource-policy")
    if ctx.auto is not None and header:
        corp = header[:256].strip().lower()
        if corp:
            out.result = {
                "same-site": "corp-implemented-with-same-site",
                "same-origin": "corp-implemented-with-same-origin",
                "cross-origin": "corp-implemented-with-cross-origin",
            }.get(corp, "corp-header-invalid")
    out.passed = out.result != "corp-header-invalid"
    return out


_TESTS: dict[str, Callable[[_Context], _Result]] = {
    "content-security-policy": _csp_test,
    "cookies": _cookies_test,
    "cross-origin-resource-sharing": _cors_test,
    "redirection": _redirection_test,
    "referrer-policy": _referrer_test,
    "strict-transport-security": _hsts_test,
    "subresource-integrity": _sri_test,
    "x-content-type-options": _xcto_test,
    "x-frame-options": _xfo_test,
    "cross-origin-resource-policy": _corp_test,
}


def grade_for_score(score: int) -> tuple[int, str]:
    """``getGradeForScore``: the score floored at 0 and its grade."""
    score = max(score, 0)
    return score, GRADE_CHART[min(score - score % 5, 100)]


def grade(site: Retrieved, version: str = DEFAULT_VERSION) -> dict[str, Any]:
    """Grade *site* as release *version* of the Observatory's ``scan()`` does.

    Returns ``{"grade", "score", "tests", "observatory", "algorithm_version"}``: the last two
    say which release graded (a score means little without them: the same site scores 5
    more with 1.6.3 when ``X-Frame-Options: DENY`` is what stops framing).

    Raises :class:`ValueError` for an unknown *version*, and with the package's message when
    the scan would fail (no response at all, or a final status other than 2xx/3xx/401/403).
    """
    rules = rules_for(version)
    modifiers = score_modifiers(rules.version)
    ctx = _Context(site, rules)
    if ctx.auto is None:
        raise ValueError("The site seems to be down.")
    status = ctx.auto.status
    if status < 200 or (status >= 400 and status not in (401, 403)):
        raise ValueError(f"Site did respond with an unexpected HTTP status code {status}.")
    tests: dict[str, dict[str, Any]] = {}
    with_credit = uncurved = 100
    for name, test in _TESTS.items():
        result = test(ctx)
        modifier = modifiers.get(result.result or "", 0)
        tests[name] = {"result": result.result, "score_modifier": modifier, "pass": result.passed}
        if result.result:
            with_credit += modifier
            if modifier < 0:
                uncurved += modifier
    raw = with_credit if uncurved >= MINIMUM_SCORE_FOR_EXTRA_CREDIT else uncurved
    score, letter = grade_for_score(raw)
    return {
        "grade": letter,
        "score": score,
        "tests": tests,
        "observatory": rules.version,
        "algorithm_version": rules.algorithm_version,
    }
