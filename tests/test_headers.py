"""The header set: every preset's exact lines (checked against docs), settings, Observatory."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sitewarden.errors import ConfigError
from sitewarden.headers.csp import new_nonce
from sitewarden.headers.headerset import (
    SecurityHeaders,
    hsts_value,
    permissions_policy_value,
)
from sitewarden.policy import PRESETS, load_policy

DOCS = Path(__file__).resolve().parent.parent / "docs"
Lines = list[tuple[str, str]]


def doc_blocks(kind: str) -> dict[str, Lines]:
    """The ```http blocks of docs/presets.md marked ``<!-- kind: preset -->``."""
    text = (DOCS / "presets.md").read_text(encoding="utf-8")
    blocks = {}
    for preset, body in re.findall(rf"<!-- {kind}: (\w+) -->\n```http\n(.*?)\n```", text, re.S):
        lines = []
        for line in body.splitlines():
            name, _, value = line.partition(": ")
            lines.append((name.lower(), value))
        blocks[preset] = lines
    return blocks


def https_lines(headers: SecurityHeaders, nonce: str | None = None) -> Lines:
    return [*headers.always, *headers.https_only, *headers.csp.headers(nonce)]


def names_of(lines: Lines) -> list[str]:
    return [name for name, _ in lines]


def value_of(lines: Lines, name: str) -> str:
    (value,) = [v for n, v in lines if n == name]
    return value


# -- presets, as documented ------------------------------------------------------------


def test_docs_document_every_preset() -> None:
    assert set(doc_blocks("preset")) == set(PRESETS)
    assert set(doc_blocks("preset-nonce")) == set(PRESETS)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_header_lines_match_docs(preset: str) -> None:
    # Fails when a preset changes without docs/presets.md (or the other way round).
    headers = SecurityHeaders(load_policy(preset))
    assert https_lines(headers) == doc_blocks("preset")[preset]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_nonce_lines_match_docs(preset: str) -> None:
    headers = SecurityHeaders(load_policy(preset))
    assert headers.csp.headers("<nonce>") == doc_blocks("preset-nonce")[preset]


def test_balanced_csp_as_written_in_docs() -> None:
    documented = value_of(doc_blocks("preset")["balanced"], "content-security-policy")
    assert documented == (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'; "
        "report-uri /.sitewarden/csp-report; report-to csp-endpoint"
    )
    assert SecurityHeaders(load_policy("balanced")).csp.enforced == documented


def test_headers_md_explains_every_header_sent() -> None:
    text = (DOCS / "headers.md").read_text(encoding="utf-8").lower()
    policy = load_policy(
        "strict",
        cross_origin_embedder_policy="require-corp",
        csp_report_only={"default-src": ["'none'"]},
    )
    for name in SecurityHeaders(policy).names:
        assert f"## {name}" in text, name


def test_no_duplicate_names_in_any_preset() -> None:
    for preset in PRESETS:
        lines = https_lines(SecurityHeaders(load_policy(preset)), new_nonce())
        assert len(names_of(lines)) == len(set(names_of(lines)))


# -- each setting ------------------------------------------------------------------------


def test_names_cover_everything_that_can_be_added() -> None:
    policy = load_policy(
        "balanced",
        cross_origin_embedder_policy="require-corp",
        csp_report_only={"default-src": ["'self'"]},
    )
    headers = SecurityHeaders(policy)
    added = set(names_of(https_lines(headers, new_nonce()))) | set(names_of(https_lines(headers)))
    assert headers.names == added
    assert {
        "strict-transport-security",
        "content-security-policy",
        "content-security-policy-report-only",
        "cross-origin-embedder-policy",
        "reporting-endpoints",
    } <= headers.names
    assert all(name == name.lower() for name in headers.names)


def test_every_header_can_be_turned_off() -> None:
    policy = load_policy(
        "balanced",
        csp=None,
        csp_report_path=None,
        frame_options=None,
        referrer_policy=None,
        permissions_policy=None,
        cross_origin_opener_policy=None,
        cross_origin_resource_policy=None,
        x_permitted_cross_domain_policies=None,
        x_content_type_options=False,
    )
    headers = SecurityHeaders(policy)
    assert headers.always == ()
    assert headers.csp.headers(new_nonce()) == []
    assert headers.names == {"strict-transport-security"}


def test_coep_only_when_set() -> None:
    assert "cross-origin-embedder-policy" not in SecurityHeaders(load_policy("strict")).names
    headers = SecurityHeaders(load_policy("strict", cross_origin_embedder_policy="credentialless"))
    assert value_of(list(headers.always), "cross-origin-embedder-policy") == "credentialless"


def test_report_path_drives_reporting_endpoints_and_directives() -> None:
    headers = SecurityHeaders(load_policy("balanced", csp_report_path="/csp/r"))
    assert value_of(list(headers.always), "reporting-endpoints") == 'csp-endpoint="/csp/r"'
    assert headers.csp.enforced is not None
    assert headers.csp.enforced.endswith("; report-uri /csp/r; report-to csp-endpoint")

    off = SecurityHeaders(load_policy("balanced", csp_report_path=None))
    assert "reporting-endpoints" not in off.names
    assert off.csp.enforced is not None
    assert "report-" not in off.csp.enforced


@pytest.mark.parametrize("path", ["/a b", '/a"b', "/a;b", "/a,b", "/a\r\nx: y", "/é"])
def test_report_path_that_breaks_headers_is_refused(path: str) -> None:
    with pytest.raises(ConfigError, match="csp_report_path"):
        SecurityHeaders(load_policy("balanced", csp_report_path=path))


def test_remove_is_lower_case() -> None:
    headers = SecurityHeaders(load_policy("balanced", remove_headers=["Server", "X-Powered-By"]))
    assert headers.remove == {"server", "x-powered-by"}
    assert "via" in SecurityHeaders(load_policy("balanced")).remove


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ({"camera": []}, "camera=()"),
        ({"fullscreen": ["self", "https://a.example"]}, 'fullscreen=(self "https://a.example")'),
        ({"geolocation": ["'self'"], "usb": ["*"]}, "geolocation=(self), usb=(*)"),
        ({"camera": ["'none'"]}, "camera=()"),
        ({"payment": ['https://a.example/"x\\']}, 'payment=("https://a.example/\\"x\\\\")'),
    ],
)
def test_permissions_policy_serialisation(features: dict[str, list[str]], expected: str) -> None:
    assert permissions_policy_value(features) == expected


def test_permissions_policy_in_the_header_set() -> None:
    headers = SecurityHeaders(load_policy("basic", permissions_policy={"camera": [], "usb": []}))
    assert value_of(list(headers.always), "permissions-policy") == "camera=(), usb=()"
    empty = SecurityHeaders(load_policy("basic", permissions_policy={}))
    assert "permissions-policy" not in empty.names


@pytest.mark.parametrize("origin", ["https://a.example\r\nx-evil: 1", "https://é.example", ""])
def test_permissions_policy_refuses_what_no_header_may_carry(origin: str) -> None:
    with pytest.raises(ConfigError, match="permissions_policy"):
        SecurityHeaders(load_policy("basic", permissions_policy={"camera": [origin]}))


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"hsts_max_age": 15_552_000, "hsts_include_subdomains": False}, "max-age=15552000"),
        ({"hsts_max_age": 31_536_000}, "max-age=31536000; includeSubDomains"),
        (
            {"hsts_max_age": 63_072_000, "hsts_preload": True},
            "max-age=63072000; includeSubDomains; preload",
        ),
        ({"hsts_max_age": 0, "hsts_include_subdomains": False}, "max-age=0"),
    ],
)
def test_hsts_variants(settings: dict[str, Any], expected: str) -> None:
    headers = SecurityHeaders(load_policy("balanced", **settings))
    assert headers.https_only == (("strict-transport-security", expected),)
    assert "strict-transport-security" not in names_of(list(headers.always))


def test_hsts_value_function() -> None:
    assert hsts_value(10, include_subdomains=False, preload=True) == "max-age=10; preload"


# -- Mozilla HTTP Observatory (v1.6.3 production scoring; shared/research) ---------------

_BROAD = {"ftp:", "http:", "https:", "*", "http://*", "http://*.*", "https://*", "https://*.*"}
_UNSAFE_INLINE = {"'unsafe-inline'", "data:"}
_NONCE_OR_HASH = ("'nonce-", "'sha256-", "'sha384-", "'sha512-")
_CSP_SCORES = {
    "csp-implemented-with-no-unsafe-default-src-none": 10,
    "csp-implemented-with-no-unsafe": 5,
    "csp-implemented-with-unsafe-inline-in-style-src-only": 0,
    "csp-implemented-but-duplicate-directives": 0,
    "csp-implemented-with-unsafe-eval": -10,
    "csp-implemented-with-unsafe-inline": -20,
    "csp-implemented-with-insecure-scheme": -20,
    "csp-header-invalid": -25,
    "csp-not-implemented": -25,
}


def observatory_csp(value: str | None) -> str:
    """The Observatory's CSP result for one header (src/analyzer/tests/csp.js, in order)."""
    if value is None:
        return "csp-not-implemented"
    policy: dict[str, list[str]] = {}
    duplicate_report = False
    for part in value.split(";"):
        tokens = part.strip().lower().split()
        if not tokens:
            continue
        name, sources = tokens[0], tokens[1:]
        if name in policy:
            if name not in ("report-uri", "report-to"):
                return "csp-header-invalid"
            duplicate_report = True
        policy[name] = sources or (["'none'"] if name.endswith("-src") else [])

    def effective(name: str) -> set[str]:
        return set(policy.get(name, policy.get("default-src", ["*"])))

    script, style, obj = effective("script-src"), effective("style-src"), effective("object-src")
    for sources in (script, style):
        if any(s.startswith(_NONCE_OR_HASH) for s in sources):
            sources.discard("'unsafe-inline'")
    if "'strict-dynamic'" in script and not any(s.startswith(_NONCE_OR_HASH) for s in script):
        return "csp-header-invalid"
    active = [s for n, v in policy.items() if n not in ("img-src", "media-src") for s in v]
    if script & (_BROAD | _UNSAFE_INLINE) or obj & _BROAD:
        result = "csp-implemented-with-unsafe-inline"
    elif any(s.startswith(("http:", "ftp:")) for s in [*active, *script]):
        result = "csp-implemented-with-insecure-scheme"
    elif "'unsafe-eval'" in script | style:
        result = "csp-implemented-with-unsafe-eval"
    elif style & (_BROAD | _UNSAFE_INLINE):
        result = "csp-implemented-with-unsafe-inline-in-style-src-only"
    elif policy.get("default-src") == ["'none'"]:
        result = "csp-implemented-with-no-unsafe-default-src-none"
    else:
        result = "csp-implemented-with-no-unsafe"
    if duplicate_report and _CSP_SCORES[result] >= 0:
        result = "csp-implemented-but-duplicate-directives"
    return result


def observatory(lines: Lines) -> dict[str, tuple[str, int]]:
    """The header-only tests of the Observatory: test → (result, modifier)."""
    got = dict(lines)
    csp = observatory_csp(got.get("content-security-policy"))
    xfo = got.get("x-frame-options", "").strip().lower()
    if "frame-ancestors" in got.get("content-security-policy", ""):
        frame = ("x-frame-options-implemented-via-csp", 5)
    elif xfo in ("deny", "sameorigin"):
        frame = ("x-frame-options-sameorigin-or-deny", 5)
    else:
        frame = ("x-frame-options-not-implemented", -20)
    referrer = got.get("referrer-policy")
    if referrer is None:
        ref = ("referrer-policy-not-implemented", 0)
    elif referrer in (
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    ):
        ref = ("referrer-policy-private", 5)
    else:
        ref = ("referrer-policy-unsafe", -5)
    corp = got.get("cross-origin-resource-policy")
    corp_result = {
        "same-origin": ("corp-implemented-with-same-origin", 10),
        "same-site": ("corp-implemented-with-same-site", 10),
        "cross-origin": ("corp-implemented-with-cross-origin", 0),
        None: ("corp-not-implemented", 0),
    }[corp]
    hsts = got.get("strict-transport-security", "")
    age = re.match(r"max-age=(\d+)", hsts)
    if age is None:
        hsts_result = ("hsts-not-implemented", -20)
    elif int(age.group(1)) >= 15_552_000:
        hsts_result = ("hsts-implemented-max-age-at-least-six-months", 0)
    else:
        hsts_result = ("hsts-implemented-max-age-less-than-six-months", -10)
    xcto = got.get("x-content-type-options", "").lower()
    return {
        "content-security-policy": (csp, _CSP_SCORES[csp]),
        "x-frame-options": frame,
        "referrer-policy": ref,
        "cross-origin-resource-policy": corp_result,
        "strict-transport-security": hsts_result,
        "x-content-type-options": (
            ("x-content-type-options-nosniff", 0)
            if xcto == "nosniff"
            else ("x-content-type-options-not-implemented", -5)
        ),
    }


def observatory_score(results: dict[str, tuple[str, int]]) -> int:
    """100 + modifiers; bonuses only count when the penalties total 10 or less."""
    penalties = sum(m for _, m in results.values() if m < 0)
    bonuses = sum(m for _, m in results.values() if m > 0)
    return 100 + penalties + (bonuses if 100 + penalties >= 90 else 0)


def test_observatory_grader_sees_penalties() -> None:
    # The referee itself must be able to fail.
    assert observatory_csp("default-src 'self'; script-src 'self' 'unsafe-inline'") == (
        "csp-implemented-with-unsafe-inline"
    )
    assert observatory_csp("script-src 'self'; object-src 'none'") == (
        "csp-implemented-with-unsafe-inline-in-style-src-only"
    )
    assert observatory_csp("default-src 'none'; report-uri /a; report-uri /b") == (
        "csp-implemented-but-duplicate-directives"
    )
    assert observatory_csp("default-src 'self'; default-src 'none'") == "csp-header-invalid"
    assert observatory_score(observatory([])) < 100


def test_strict_preset_meets_every_a_plus_condition() -> None:
    headers = SecurityHeaders(load_policy("strict"))
    for nonce in (None, new_nonce()):
        lines = https_lines(headers, nonce)
        csp = dict(
            (part.split()[0], part.split()[1:])
            for part in value_of(lines, "content-security-policy").split("; ")
        )
        # csp-implemented-with-no-unsafe-default-src-none (+10): default-src exactly 'none'...
        assert csp["default-src"] == ["'none'"]
        # ...and nothing of csp-implemented-with-unsafe-inline (-20) / -with-unsafe-eval (-10)
        # / -with-insecure-scheme (-20) in script-src or object-src.
        for directive in ("script-src", "object-src", "style-src"):
            for bad in ("'unsafe-inline'", "'unsafe-eval'", "data:", "*", "http:", "https:"):
                assert bad not in csp[directive]
            assert not any(s.startswith(("http:", "ftp:")) for s in csp[directive])
        # x-frame-options-implemented-via-csp (+5).
        assert csp["frame-ancestors"] == ["'none'"]
        # csp-implemented-but-duplicate-directives would cancel the CSP bonus.
        assert value_of(lines, "content-security-policy").count("report-uri") == 1
        assert value_of(lines, "content-security-policy").count("report-to") == 1
        # referrer-policy-private (+5).
        assert value_of(lines, "referrer-policy") in (
            "no-referrer",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin",
        )
        # corp-implemented-with-same-origin (+10).
        assert value_of(lines, "cross-origin-resource-policy") == "same-origin"
        # hsts-implemented-max-age-at-least-six-months (0, not -10/-20).
        max_age = int(value_of(lines, "strict-transport-security").split(";")[0].split("=")[1])
        assert max_age >= 15_552_000
        # x-content-type-options-nosniff (0, not -5).
        assert value_of(lines, "x-content-type-options") == "nosniff"

        results = observatory(lines)
        assert results["content-security-policy"][0] == (
            "csp-implemented-with-no-unsafe-default-src-none"
        )
        assert all(modifier >= 0 for _, modifier in results.values())
        # 130 from the headers; the demo's hardened cookies (+5, samesite) make 135.
        assert observatory_score(results) >= 130


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_grades_a_plus_without_penalty(preset: str) -> None:
    headers = SecurityHeaders(load_policy(preset))
    for nonce in (None, new_nonce()):
        results = observatory(https_lines(headers, nonce))
        assert all(modifier >= 0 for _, modifier in results.values()), results
        assert observatory_score(results) >= 100
