"""The two Observatory releases the grader grades as: 1.6.3 (production) and 1.4.8 (npm).

Sans-I/O: each test builds a :class:`Retrieved` and grades it as both releases. Where the
upstream repository (``mdn/mdn-http-observatory``) has a test for a difference, the test here
mirrors it and says which; the others are reasoned from the v1.6.3 source named in their
docstring. Parity with the real 1.4.8 package, and the 1.6.3 delta over a live corpus, are in
test_scan_parity.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from sitewarden.audit import observatory
from sitewarden.audit.observatory import (
    DEFAULT_VERSION,
    OBSERVATORY_VERSIONS,
    RULES,
    SCORE_MODIFIERS,
    Fetch,
    Response,
    Retrieved,
    grade,
    rules_for,
    score_modifier,
    score_modifiers,
)

URL = "https://mozilla.org/"
#: Every test passes and nothing frames the page but what a test adds (no CSP, no XFO).
BASE = [
    ("content-type", "text/html"),
    ("strict-transport-security", "max-age=63072000"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
]
FRAMING = [("content-security-policy", "default-src 'none'; frame-ancestors 'none'")]
CSP_NONE = [("content-security-policy", "default-src 'none'")]
PAGE = "<!doctype html><html><head>{head}</head><body>{body}</body></html>"


def site(headers: list[tuple[str, str]], head: str = "", body: str = "<p>x</p>") -> Retrieved:
    """An HTTPS page that HTTP redirects to, answering *headers* and the page."""
    page = PAGE.format(head=head, body=body)
    https = Fetch(URL, [Response(URL, 200, headers, page)])
    http = Fetch(
        "http://mozilla.org/",
        [
            Response("http://mozilla.org/", 301, [("location", URL)]),
            Response(URL, 200, headers, page),
        ],
    )
    return Retrieved("mozilla.org", http=http, https=https)


def results(retrieved: Retrieved, test: str) -> dict[str, str]:
    """The result of *test* as each release grades *retrieved*."""
    return {v: grade(retrieved, v)["tests"][test]["result"] for v in OBSERVATORY_VERSIONS}


def csp_data(retrieved: Retrieved, version: str) -> dict[str, list[str]] | None:
    """The CSP test's ``data`` (the effective policy), as upstream's tests read it."""
    ctx = observatory._Context(retrieved, rules_for(version))
    data: dict[str, list[str]] | None = observatory._csp_test(ctx).data
    return data


# -- the releases -----------------------------------------------------------------------


def test_production_is_the_default() -> None:
    assert OBSERVATORY_VERSIONS == ("1.6.3", "1.4.8")
    assert DEFAULT_VERSION == "1.6.3"
    result = grade(site([*BASE, *FRAMING]))
    assert (result["observatory"], result["algorithm_version"]) == ("1.6.3", 5)
    old = grade(site([*BASE, *FRAMING]), "1.4.8")
    assert (old["observatory"], old["algorithm_version"]) == ("1.4.8", 4)
    assert set(result) == {"grade", "score", "tests", "observatory", "algorithm_version"}


def test_unknown_release_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown Observatory version '2\.0'"):
        grade(site(BASE), "2.0")
    with pytest.raises(ValueError, match=r"known: 1\.6\.3, 1\.4\.8"):
        rules_for("1.6")
    with pytest.raises(ValueError):
        score_modifier("csp-not-implemented", "latest")


def test_rules_are_one_record_per_release() -> None:
    assert set(RULES) == set(OBSERVATORY_VERSIONS)
    new, old = RULES["1.6.3"], RULES["1.4.8"]
    assert (new.csp_split_on_commas, old.csp_split_on_commas) == (True, False)
    assert (new.html_parser, old.html_parser) == ("htmlparser2", "jsdom")
    assert (new.sri_untyped_is_html, old.sri_untyped_is_html) == (True, False)


def test_score_tables_differ_only_in_the_xfo_bonus() -> None:
    """src/grader/charts.js: SCORE_TABLE, changed by #332 (commit 102df60, v1.5.0)."""
    new, old = score_modifiers("1.6.3"), score_modifiers("1.4.8")
    assert {k for k in new if new[k] != old[k]} == {"x-frame-options-sameorigin-or-deny"}
    assert score_modifier("x-frame-options-sameorigin-or-deny") == 5
    assert score_modifier("x-frame-options-sameorigin-or-deny", "1.4.8") == 0
    assert dict(new) == SCORE_MODIFIERS  # the production table
    assert score_modifier("no-such-result") == 0


# -- X-Frame-Options (#332) -------------------------------------------------------------


@pytest.mark.parametrize("value", ["DENY", "DENY ", "sameorigin"])
def test_xfo_deny_earns_five_points_in_production(value: str) -> None:
    """Mirrors test/x-frame-options.test.js "checks deny"; the +5 is charts.js of v1.5.0."""
    retrieved = site([*BASE, *CSP_NONE, ("x-frame-options", value)])
    new, old = grade(retrieved), grade(retrieved, "1.4.8")
    for graded in (new, old):
        xfo = graded["tests"]["x-frame-options"]
        assert (xfo["result"], xfo["pass"]) == ("x-frame-options-sameorigin-or-deny", True)
    assert new["tests"]["x-frame-options"]["score_modifier"] == 5
    assert old["tests"]["x-frame-options"]["score_modifier"] == 0
    assert (new["score"], old["score"]) == (130, 125)


def test_xfo_twice_stays_invalid() -> None:
    """Mirrors test/x-frame-options.test.js "checks validity" (the same in both releases)."""
    retrieved = site([*BASE, *CSP_NONE, ("x-frame-options", "SAMEORIGIN, SAMEORIGIN")])
    assert set(results(retrieved, "x-frame-options").values()) == {"x-frame-options-header-invalid"}


def test_xfo_bonus_counts_only_with_extra_credit() -> None:
    """The extra-credit rule is unchanged: with -25 for the CSP, no bonus counts at all."""
    retrieved = site([*BASE, ("x-frame-options", "DENY")])
    new, old = grade(retrieved), grade(retrieved, "1.4.8")
    assert new["tests"]["x-frame-options"]["score_modifier"] == 5
    assert (new["score"], new["grade"]) == (old["score"], old["grade"]) == (75, "B")


# -- CSP split on commas (#496) ---------------------------------------------------------


def test_rfc9110_combined_policies_are_not_invalid() -> None:
    """Mirrors test/csp.test.js "multiple CSP headers combined per RFC 9110 are not treated as
    invalid" (#463): two policies in one value. As one policy (1.4.8), script-src repeats.
    """
    value = "default-src 'none'; script-src 'self', default-src 'none'; script-src 'self'"
    retrieved = site([*BASE, ("content-security-policy", value)])
    assert results(retrieved, "content-security-policy") == {
        "1.6.3": "csp-implemented-with-no-unsafe-default-src-none",
        "1.4.8": "csp-header-invalid",
    }
    assert grade(retrieved)["tests"]["content-security-policy"]["pass"] is True
    assert csp_data(retrieved, "1.6.3") == {"default-src": ["'none'"], "script-src": ["'self'"]}


def test_rfc9110_policies_are_intersected() -> None:
    """Mirrors test/csp.test.js "multiple CSP headers with differing policies produce correct
    intersection" (#463): the restrictive middle policy wins for style-src.
    """
    value = (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline', "
        "default-src 'none'; style-src 'self', "
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'"
    )
    retrieved = site([*BASE, ("content-security-policy", value)])
    csp = grade(retrieved)["tests"]["content-security-policy"]
    assert (csp["result"], csp["pass"]) == ("csp-implemented-with-no-unsafe-default-src-none", True)
    assert csp_data(retrieved, "1.6.3") == {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
    }
    assert results(retrieved, "content-security-policy")["1.4.8"] == "csp-header-invalid"


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_policy_is_invalid_in_both(value: str) -> None:
    """Mirrors test/csp.test.js "header invalid" for its empty values."""
    retrieved = site([*BASE, ("content-security-policy", value)])
    assert set(results(retrieved, "content-security-policy").values()) == {"csp-header-invalid"}


def test_trailing_comma_is_invalid_in_production() -> None:
    """csp.js splitCspHeaders keeps the empty piece after the comma; cspParser.js refuses a
    policy shorter than "img-sr". The 1.4.8 parser reads "'none'," as a source.
    """
    retrieved = site([*BASE, ("content-security-policy", "default-src 'none',")])
    assert results(retrieved, "content-security-policy") == {
        "1.6.3": "csp-header-invalid",
        "1.4.8": "csp-implemented-with-no-unsafe",
    }


def test_two_header_lines_are_two_policies() -> None:
    """Node joins the lines with ", ": for 1.6.3 the second is a policy with frame-ancestors,
    so X-Frame-Options is implemented via CSP (csp.js, x-frame-options.js).
    """
    retrieved = site([*BASE, *CSP_NONE, ("content-security-policy", "frame-ancestors 'none'")])
    new, old = grade(retrieved), grade(retrieved, "1.4.8")
    assert new["tests"]["x-frame-options"]["result"] == "x-frame-options-implemented-via-csp"
    assert old["tests"]["x-frame-options"]["result"] == "x-frame-options-not-implemented"
    assert new["tests"]["content-security-policy"]["result"] == (
        "csp-implemented-with-no-unsafe-default-src-none"
    )
    assert (new["grade"], new["score"], old["grade"], old["score"]) == ("A+", 130, "B+", 80)


def test_meta_policy_is_split_too() -> None:
    """csp.js applies splitCspHeaders to the <meta http-equiv> values as well."""
    meta = '<meta http-equiv="Content-Security-Policy" content="default-src \'none\',">'
    retrieved = site(BASE, head=meta)
    assert results(retrieved, "content-security-policy") == {
        "1.6.3": "csp-header-invalid",
        "1.4.8": "csp-implemented-with-no-unsafe",
    }


# -- the HTML parser: JSDOM → htmlparser2 (#419) ----------------------------------------


def test_template_content_is_seen_in_production() -> None:
    """utils/html-parser.js collects every tag; JSDOM kept <template> content out."""
    head = (
        "<template><meta http-equiv=content-security-policy content=\"default-src 'none'\">"
        "</template>"
    )
    body = '<template><script src="http://cdn.example.com/a.js"></script></template>'
    retrieved = site([*BASE, ("x-frame-options", "DENY")], head=head, body=body)
    assert results(retrieved, "content-security-policy") == {
        "1.6.3": "csp-implemented-with-no-unsafe-default-src-none",
        "1.4.8": "csp-not-implemented",
    }
    assert results(retrieved, "subresource-integrity") == {
        "1.6.3": "sri-not-implemented-and-external-scripts-not-loaded-securely",
        "1.4.8": "sri-not-implemented-but-no-scripts-loaded",
    }


def test_script_src_is_the_attribute_as_written() -> None:
    """subresource-integrity.js reads getAttribute(script, "src"): "HTTPS://…" does not match
    /^https?:\\/\\//, so it counts as a relative URL. JSDOM's src was the parsed URL.
    """
    for src in ("HTTPS://CDN.EXAMPLE.COM/a.js", " https://cdn.example.com/a.js"):
        retrieved = site([*BASE, *FRAMING], body=f'<script src="{src}"></script>')
        assert results(retrieved, "subresource-integrity") == {
            "1.6.3": "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
            "1.4.8": "sri-not-implemented-but-external-scripts-loaded-securely",
        }


def test_self_closing_script_does_not_swallow_the_next_one() -> None:
    """htmlparser2's tokenizer leaves raw-text mode at "/>"; JSDOM read on as script text."""
    body = '<script src="/a.js"/><script src="http://cdn.example.com/b.js"></script>'
    retrieved = site([*BASE, *FRAMING], body=body)
    assert results(retrieved, "subresource-integrity") == {
        "1.6.3": "sri-not-implemented-and-external-scripts-not-loaded-securely",
        "1.4.8": "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
    }


def test_svg_script_has_a_src_in_production() -> None:
    """An SVG <script> is a script for both; JSDOM gave it no src, htmlparser2 its attribute."""
    body = '<svg><script src="http://cdn.example.com/a.js"></script></svg>'
    retrieved = site([*BASE, *FRAMING], body=body)
    assert results(retrieved, "subresource-integrity") == {
        "1.6.3": "sri-not-implemented-and-external-scripts-not-loaded-securely",
        "1.4.8": "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
    }


def test_noscript_meta_is_seen_in_production() -> None:
    """JSDOM parsed the metas as a fragment with scripting on: <noscript> content was text."""
    head = "<noscript><meta http-equiv=content-security-policy content=\"default-src 'none'\">"
    retrieved = site([*BASE, ("x-frame-options", "DENY")], head=head + "</noscript>")
    assert results(retrieved, "content-security-policy") == {
        "1.6.3": "csp-implemented-with-no-unsafe-default-src-none",
        "1.4.8": "csp-not-implemented",
    }
    body = '<noscript><script src="http://cdn.example.com/a.js"></script></noscript>'
    scripts = site([*BASE, *FRAMING], body=body)  # scripts: found by both
    assert set(results(scripts, "subresource-integrity").values()) == {
        "sri-not-implemented-and-external-scripts-not-loaded-securely"
    }


@pytest.mark.parametrize("tag", ["textarea", "title", "xmp", "iframe", "noembed", "noframes"])
def test_raw_text_content_holds_no_script(tag: str) -> None:
    """Both parsers read these elements' content as text (checked with JSDOM; htmlparser2's
    tokenizer lists the same elements): html.parser alone would see the script.
    """
    body = f'<{tag}><script src="http://cdn.example.com/a.js"></script></{tag}>'
    retrieved = site([*BASE, *FRAMING], body=body)
    assert set(results(retrieved, "subresource-integrity").values()) == {
        "sri-not-implemented-but-no-scripts-loaded"
    }


# -- SRI without a Content-Type ---------------------------------------------------------


def test_untyped_page_is_html_for_sri_only() -> None:
    """subresource-integrity.js: ``if (mime && !HTML_TYPES.has(mime))`` — no mime, no
    "not HTML". The retriever still reads meta tags only from a page typed as HTML.
    """
    untyped = [h for h in BASE if h[0] != "content-type"]
    meta = "<meta http-equiv=content-security-policy content=\"default-src 'none'\">"
    body = '<script src="http://cdn.example.com/a.js"></script>'
    retrieved = site(untyped, head=meta, body=body)
    assert results(retrieved, "subresource-integrity") == {
        "1.6.3": "sri-not-implemented-and-external-scripts-not-loaded-securely",
        "1.4.8": "sri-not-implemented-response-not-html",
    }
    assert set(results(retrieved, "content-security-policy").values()) == {"csp-not-implemented"}
    # A Content-Type without a media type (";charset=utf-8") is no mime either.
    odd = site([*untyped, ("content-type", ";charset=utf-8")], body=body)
    assert results(odd, "subresource-integrity")["1.6.3"] == (
        "sri-not-implemented-and-external-scripts-not-loaded-securely"
    )


def test_typed_non_html_stays_not_html() -> None:
    """Mirrors test/subresource-integrity.test.js "checks for not html" (both releases)."""
    headers = [*[h for h in BASE if h[0] != "content-type"], ("content-type", "application/json")]
    graded: dict[str, Any] = {v: grade(site(headers), v) for v in OBSERVATORY_VERSIONS}
    for result in graded.values():
        sri = result["tests"]["subresource-integrity"]
        assert (sri["result"], sri["pass"]) == ("sri-not-implemented-response-not-html", True)
