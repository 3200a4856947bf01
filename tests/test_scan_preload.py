"""The HSTS preload list of ``sitewarden scan`` (:mod:`sitewarden.audit.preload`).

The grading with a list is proven against the npm Observatory by the parity corpus
(``tests/test_scan_parity.py``, the ``preload-*`` cases). These tests cover the list itself:
its formats, the lookup rule, the refusal of damaged files, the download that replaces the
cached list only with a good one, and the command's options.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sitewarden.audit.observatory import Fetch, Response, Retrieved, grade
from sitewarden.audit.preload import (
    HstsPreload,
    PreloadError,
    cache_path,
    default_preload,
    download_preload,
    load_preload,
    parse_preload,
)
from sitewarden.cli import main

#: Chromium's format, with its // comments (the real file starts with a licence block).
CHROMIUM = """// Copyright header, as in transport_security_state_static.json
{
  // pinsets are ignored
  "pinsets": [],
  "entries": [
    // force-https entries are the preload list
    { "name": "Preloaded.example", "policy": "custom", "mode": "force-https" },
    { "name": "parent.example", "policy": "bulk-18-weeks", "mode": "force-https",
      "include_subdomains": true },
    { "name": "pinned.example", "policy": "google", "include_subdomains": true },
    { "name": "app", "policy": "public-suffix", "mode": "force-https",
      "include_subdomains": true }
  ]
}
"""


def test_chromium_format() -> None:
    preload = parse_preload(CHROMIUM, "chromium.json")
    assert preload.entries == {"preloaded.example": False, "parent.example": True, "app": True}
    assert "3 hosts" in preload.source


def test_lookup_rule() -> None:
    """The Observatory's rule: the host itself, or a parent with include_subdomains."""
    preload = parse_preload(CHROMIUM, "chromium.json")
    assert preload("preloaded.example")
    assert preload("PRELOADED.example.")  # case and a trailing dot do not matter
    assert not preload("www.preloaded.example")  # no include_subdomains
    assert preload("parent.example") and preload("a.b.parent.example")
    assert not preload("pinned.example") and not preload("www.pinned.example")  # pinning only
    assert preload("anything.app")  # a preloaded top-level domain
    assert not preload("example.org") and not preload("127.0.0.1")


def test_observatory_format_and_cache_format(tmp_path: Path) -> None:
    observatory = {
        "preloaded.example": {"includeSubDomains": False, "mode": "force-https", "pinned": False},
        "pinned.example": {"includeSubDomains": True, "mode": ""},
    }
    path = tmp_path / "hsts-preload.json"
    path.write_text(json.dumps(observatory))
    preload = load_preload(path)
    assert preload.entries == {"preloaded.example": False}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{not json",
        "[1, 2]",
        '{"entries": [{"mode": "force-https"}]}',  # an entry without a name
        '{"a.example": "force-https"}',  # an Observatory entry that is not an object
        '{"format": "sitewarden-hsts-preload/1", "entries": {"a.example": "yes"}}',
        '{"format": "sitewarden-hsts-preload/1", "entries": []}',
    ],
)
def test_damaged_lists_are_refused(text: str) -> None:
    """A damaged file is an error, never an empty list that would quietly cost 5 points."""
    with pytest.raises(PreloadError):
        parse_preload(text, "list.json")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PreloadError, match="cannot read"):
        load_preload(tmp_path / "missing.json")


def test_bundled_snapshot_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    preload = default_preload()
    assert "hstspreload" in preload.source
    assert preload("foo.dev")  # .dev is preloaded as a whole top-level domain
    assert not preload("example.com")
    assert not preload("127.0.0.1")


def test_damaged_cache_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache_path().parent.mkdir(parents=True)
    cache_path().write_text('{"format": "sitewarden-hsts-preload/1", "entries": [')
    with pytest.raises(PreloadError):
        default_preload()


def test_grading_uses_the_list() -> None:
    """hsts-preloaded (+5) and all-redirects-preloaded come from the list given."""
    hsts = [("strict-transport-security", "max-age=63072000")]
    page = Response("https://parent.example/", 200, [("content-type", "text/plain"), *hsts], "")
    hop = Response("http://parent.example/", 301, [("location", "https://parent.example/")], "")
    site = Retrieved(
        hostname="parent.example",
        http=Fetch("http://parent.example/", [hop, page], verified=True),
        https=Fetch("https://parent.example/", [page], verified=True),
    )
    plain = grade(site)["tests"]
    site.preload = parse_preload(CHROMIUM, "chromium.json")
    preloaded = grade(site)["tests"]
    assert plain["strict-transport-security"]["result"] == (
        "hsts-implemented-max-age-at-least-six-months"
    )
    assert preloaded["strict-transport-security"]["result"] == "hsts-preloaded"
    assert preloaded["strict-transport-security"]["score_modifier"] == 5
    assert plain["redirection"]["result"] == "redirection-to-https"
    assert preloaded["redirection"]["result"] == "redirection-all-redirects-preloaded"


# -- download ---------------------------------------------------------------------------


class _Files(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        status, body = self.files.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def files() -> Iterator[tuple[str, dict[str, tuple[int, bytes]]]]:
    served: dict[str, tuple[int, bytes]] = {}
    handler = type("Handler", (_Files,), {"files": served})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def test_download_replaces_the_list_only_with_a_good_one(
    tmp_path: Path, files: tuple[str, dict[str, tuple[int, bytes]]]
) -> None:
    base, served = files
    served["/list.json"] = (200, CHROMIUM.encode())
    served["/garbage.json"] = (200, b"<html>rate limited</html>")
    served["/empty.json"] = (200, b'{"entries": []}')
    target = tmp_path / "cache" / "hsts-preload.json"

    fresh = download_preload(f"{base}/list.json", target)
    assert fresh("a.parent.example")
    assert load_preload(target).entries == fresh.entries  # the cache reads back the same
    before = target.read_bytes()
    for bad in ("/garbage.json", "/empty.json", "/missing.json"):
        with pytest.raises(PreloadError):
            download_preload(f"{base}{bad}", target)
        assert target.read_bytes() == before  # the previous list is kept
    assert sorted(p.name for p in target.parent.iterdir()) == ["hsts-preload.json"]  # no temp


def test_cli_update_then_scan_uses_the_downloaded_list(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    files: tuple[str, dict[str, tuple[int, bytes]]],
) -> None:
    base, served = files
    served["/list.json"] = (200, CHROMIUM.encode())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code = main(["scan", "--update-hsts-preload", "--hsts-preload-url", f"{base}/list.json"])
    err = capsys.readouterr().err
    assert code == 0
    assert "3 hosts" in err
    assert cache_path().is_file()
    assert default_preload()("x.parent.example")
    assert main(["scan", "--update-hsts-preload", "--hsts-preload-url", f"{base}/no"]) == 1
    assert "cannot download" in capsys.readouterr().err
    assert default_preload()("x.parent.example")  # the failed update kept the list


def test_cli_refuses_a_damaged_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code = main(["scan", "https://127.0.0.1:1/", "--hsts-preload", str(bad)])
    assert code == 2
    assert "not JSON" in capsys.readouterr().err


def test_repr_names_the_source() -> None:
    assert "given entries" in repr(HstsPreload({"a.example": True}))
