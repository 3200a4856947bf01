"""Content-Security-Policy rendering, nonces and report directives."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden.headers.csp import CSPHeader, new_nonce, render_csp
from sitewarden.policy import CSP, PRESETS

NONCE = "AAAAAAAAAAAAAAAAAAAAAA"


def parse(value: str) -> list[tuple[str, list[str]]]:
    """Split a CSP header value into (directive, sources) pairs, in order."""
    out = []
    for part in value.split(";"):
        tokens = part.split()
        if tokens:
            out.append((tokens[0], tokens[1:]))
    return out


def directives(value: str) -> dict[str, list[str]]:
    pairs = parse(value)
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), f"duplicate directive in {value!r}"
    return dict(pairs)


# -- new_nonce -----------------------------------------------------------------------


def test_nonce_is_128_bits_base64url_without_padding() -> None:
    nonce = new_nonce()
    assert len(nonce) == 22
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", nonce)
    assert len(base64.urlsafe_b64decode(nonce + "==")) == 16


def test_nonces_differ() -> None:
    assert len({new_nonce() for _ in range(100)}) == 100


# -- render_csp ----------------------------------------------------------------------


def test_directives_in_given_order_and_bare_names() -> None:
    csp: CSP = {
        "img-src": ["'self'", "data:"],
        "default-src": ["'self'"],
        "upgrade-insecure-requests": [],
        "object-src": ["'none'"],
    }
    assert render_csp(csp) == (
        "img-src 'self' data:; default-src 'self'; upgrade-insecure-requests; object-src 'none'"
    )


def test_nonce_goes_into_script_and_style_only() -> None:
    value = render_csp(PRESETS["strict"]["csp"], nonce=NONCE)
    found = directives(value)
    assert found["script-src"] == ["'self'", f"'nonce-{NONCE}'"]
    assert found["style-src"] == ["'self'", f"'nonce-{NONCE}'"]
    others = [name for name, sources in found.items() if f"'nonce-{NONCE}'" in sources]
    assert sorted(others) == ["script-src", "style-src"]
    assert value.count("nonce-") == 2


def test_nonce_replaces_none_instead_of_joining_it() -> None:
    value = render_csp({"default-src": ["'none'"], "img-src": ["'self'"]}, nonce=NONCE)
    found = directives(value)
    assert found["script-src"] == [f"'nonce-{NONCE}'"]
    assert found["style-src"] == [f"'nonce-{NONCE}'"]
    assert found["default-src"] == ["'none'"]  # untouched: still the Observatory's +10
    assert "'none'" not in found["script-src"]


def test_created_directives_copy_default_src_and_follow_it() -> None:
    value = render_csp(
        {"default-src": ["'self'", "https://cdn.example"], "object-src": ["'none'"]},
        nonce=NONCE,
    )
    assert [name for name, _ in parse(value)] == [
        "default-src",
        "script-src",
        "style-src",
        "object-src",
    ]
    assert directives(value)["script-src"] == ["'self'", "https://cdn.example", f"'nonce-{NONCE}'"]


def test_explicit_none_and_empty_lists_become_the_nonce() -> None:
    value = render_csp({"script-src": ["'NONE'"], "style-src": []}, nonce=NONCE)
    found = directives(value)
    assert found == {"script-src": [f"'nonce-{NONCE}'"], "style-src": [f"'nonce-{NONCE}'"]}


def test_no_default_src_means_no_created_directive() -> None:
    # Scripts are unrestricted already; a nonce-only script-src would narrow the policy.
    csp: CSP = {"img-src": ["'self'"], "frame-ancestors": ["'none'"]}
    assert render_csp(csp, nonce=NONCE) == render_csp(csp)


def test_no_nonce_where_unsafe_inline_would_be_switched_off() -> None:
    csp: CSP = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
    }
    found = directives(render_csp(csp, nonce=NONCE))
    assert found["style-src"] == ["'self'", "'unsafe-inline'"]
    assert found["script-src"] == ["'self'", f"'nonce-{NONCE}'"]
    # ...nor created from a default-src that allows inline code.
    loose = directives(render_csp({"default-src": ["'self'", "'unsafe-inline'"]}, nonce=NONCE))
    assert list(loose) == ["default-src"]


def test_strict_dynamic_gets_the_nonce_despite_unsafe_inline_fallback() -> None:
    csp: CSP = {"script-src": ["'strict-dynamic'", "'unsafe-inline'", "https:"]}
    found = directives(render_csp(csp, nonce=NONCE))
    assert f"'nonce-{NONCE}'" in found["script-src"]


def test_elem_directives_get_the_nonce_only_when_present() -> None:
    csp: CSP = {"default-src": ["'self'"], "script-src-elem": ["'self'"], "img-src": ["'self'"]}
    found = directives(render_csp(csp, nonce=NONCE))
    assert f"'nonce-{NONCE}'" in found["script-src-elem"]
    assert "style-src-elem" not in found
    assert f"'nonce-{NONCE}'" not in found["img-src"]


def test_report_directives_appended_once() -> None:
    value = render_csp(
        PRESETS["balanced"]["csp"], nonce=NONCE, report_uri="/r", report_to="csp-endpoint"
    )
    pairs = parse(value)
    assert pairs[-2:] == [("report-uri", ["/r"]), ("report-to", ["csp-endpoint"])]
    assert value.count("report-uri") == 1
    assert value.count("report-to") == 1


def test_report_directives_already_in_the_policy_win() -> None:
    csp: CSP = {"default-src": ["'self'"], "report-uri": ["https://reports.example/csp"]}
    value = render_csp(csp, report_uri="/r", report_to="csp-endpoint")
    found = directives(value)  # asserts no duplicate directive
    assert found["report-uri"] == ["https://reports.example/csp"]
    assert found["report-to"] == ["csp-endpoint"]


@pytest.mark.parametrize("bad", ["", "a b", "x'; script-src *", "abc;"])
def test_render_refuses_a_nonce_that_is_not_base64(bad: str) -> None:
    with pytest.raises(ValueError, match="nonce"):
        render_csp({"default-src": ["'self'"]}, nonce=bad)


# -- CSPHeader -----------------------------------------------------------------------


def make(csp: CSP | None, report_only: CSP | None = None, *, nonce: bool = True) -> CSPHeader:
    return CSPHeader(
        csp, report_only, nonce_enabled=nonce, report_uri="/r", report_to="csp-endpoint"
    )


def test_without_nonce_the_precomputed_list_is_returned() -> None:
    header = make(PRESETS["balanced"]["csp"])
    first = header.headers(None)
    assert header.headers(None) is first
    assert first[0][1] is header.enforced  # the same string object: nothing formatted
    assert first == [
        (
            "content-security-policy",
            render_csp(PRESETS["balanced"]["csp"], report_uri="/r", report_to="csp-endpoint"),
        )
    ]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_spliced_value_equals_a_full_render(preset: str) -> None:
    csp = PRESETS[preset]["csp"]
    header = make(csp, report_only={"default-src": ["'none'"]})
    nonce = new_nonce()
    assert header.headers(nonce) == [
        (
            "content-security-policy",
            render_csp(csp, nonce=nonce, report_uri="/r", report_to="csp-endpoint"),
        ),
        (
            "content-security-policy-report-only",
            render_csp(
                {"default-src": ["'none'"]}, nonce=nonce, report_uri="/r", report_to="csp-endpoint"
            ),
        ),
    ]


def test_two_responses_get_different_nonces() -> None:
    header = make(PRESETS["strict"]["csp"])
    one, two = header.headers(new_nonce()), header.headers(new_nonce())
    assert one != two
    nonces = {re.findall(r"'nonce-([^']+)'", v[0][1])[0] for v in (one, two)}
    assert len(nonces) == 2


def test_report_only_is_a_separate_header() -> None:
    header = make({"default-src": ["'self'"]}, report_only={"default-src": ["'none'"]})
    names = [name for name, _ in header.headers(None)]
    assert names == ["content-security-policy", "content-security-policy-report-only"]
    assert header.names == frozenset(names)
    enforced, report_only = (value for _, value in header.headers(None))
    assert directives(enforced)["default-src"] == ["'self'"]
    assert directives(report_only)["default-src"] == ["'none'"]
    for value in (enforced, report_only):
        assert value.count("report-uri /r") == 1
        assert value.count("report-to csp-endpoint") == 1


def test_report_only_alone() -> None:
    header = make(None, report_only={"default-src": ["'self'"]})
    assert [name for name, _ in header.headers(NONCE)] == ["content-security-policy-report-only"]
    assert header.enforced is None
    assert header.names == {"content-security-policy-report-only"}


def test_nothing_configured_sends_nothing() -> None:
    header = make(None)
    assert header.headers(None) == []
    assert header.headers(NONCE) == []
    assert header.names == frozenset()
    assert not header.uses_nonce


def test_nonce_disabled_ignores_the_nonce() -> None:
    header = make(PRESETS["strict"]["csp"], nonce=False)
    assert not header.uses_nonce
    assert header.headers(NONCE) is header.headers(None)
    assert "nonce-" not in header.headers(NONCE)[0][1]


def test_policy_without_a_nonce_slot_does_not_use_nonces() -> None:
    header = make({"img-src": ["'self'"]})
    assert not header.uses_nonce
    assert header.headers(NONCE) is header.headers(None)
    assert make(PRESETS["basic"]["csp"]).uses_nonce


# -- properties ----------------------------------------------------------------------

_directive = st.sampled_from(
    ["default-src", "script-src", "style-src", "img-src", "script-src-elem", "form-action"]
)
_source = st.sampled_from(
    ["'self'", "'none'", "'unsafe-inline'", "'strict-dynamic'", "https://a.example", "data:"]
)
_csp = st.dictionaries(_directive, st.lists(_source, max_size=3, unique=True), min_size=1)


@settings(max_examples=200, deadline=None)
@given(csp=_csp, nonce=st.sampled_from([NONCE, "b2theXo-_0123456789ab", "QUJD+/=="]))
def test_splicing_matches_rendering_and_never_widens(csp: CSP, nonce: str) -> None:
    header = make(csp)
    spliced = header.headers(nonce)[0][1]
    assert spliced == render_csp(csp, nonce=nonce, report_uri="/r", report_to="csp-endpoint")
    plain = directives(header.headers(None)[0][1])
    slot = f"'nonce-{nonce}'"
    for name, sources in directives(spliced).items():
        has_nonce = slot in sources
        if name not in plain:  # created from default-src, for the nonce
            assert has_nonce
            assert name in ("script-src", "style-src")
        base = plain[name] if name in plain else csp["default-src"]
        expected = [s for s in base if s.lower() != "'none'"] if has_nonce else base
        assert [s for s in sources if s != slot] == expected
        if has_nonce:
            assert name in ("script-src", "style-src", "script-src-elem", "style-src-elem")
            assert "'unsafe-inline'" not in sources or "'strict-dynamic'" in sources
