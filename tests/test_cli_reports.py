"""The ``reports`` and ``sri`` commands (run_* functions and their parsers)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from sitewarden.cli_reports import add_reports_parser, add_sri_parser, run_reports, run_sri
from sitewarden.policy import load_policy
from sitewarden.reports import ReportReceiver
from sitewarden.sri import integrity
from sitewarden.store import open_store
from sitewarden.web.request import RequestView


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sitewarden")
    commands = p.add_subparsers(dest="command")
    add_reports_parser(commands)
    add_sri_parser(commands)
    return p


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=300, color_system=None), out


def fill(url: str, n: int) -> None:
    store = open_store(url)
    receiver = ReportReceiver(load_policy(), store)
    for i in range(n):
        body = {
            "csp-report": {
                "document-uri": f"https://example.org/{i}",
                "effective-directive": "script-src-elem",
                "blocked-uri": "https://evil.example/[bold]x[/bold].js",
                "source-file": "https://example.org/app.js",
                "line-number": 7,
                "disposition": "report" if i % 2 else "enforce",
            }
        }
        view = RequestView(
            "POST", "https", "example.org", "/r", headers={"content-type": "application/csp-report"}
        )
        assert receiver.handle(view, json.dumps(body).encode(), f"192.0.2.{i}").status == 204
    store.close()


def test_reports_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    fill(url, 3)
    args = parser().parse_args(["reports", "--store", url, "--json", "--limit", "2"])
    con, out = console()
    assert run_reports(args, con) == 0
    doc = json.loads(out.getvalue())
    assert doc["store"] == url
    assert [r["document_uri"] for r in doc["reports"]] == [
        "https://example.org/2",
        "https://example.org/1",
    ]


def test_reports_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    fill(url, 2)
    con, out = console()
    assert run_reports(parser().parse_args(["reports", "--store", url]), con) == 0
    text = out.getvalue()
    assert "https://example.org/0" in text and "https://example.org/1" in text
    assert "script-src-elem (report-only)" in text
    assert "app.js:7" in text
    assert "[bold]x[/bold]" in text  # shown literally, never as markup


def test_reports_empty_store() -> None:
    con, out = console()
    args = argparse.Namespace(store="memory://", json=False, limit=50)
    assert run_reports(args, con) == 0
    assert "No CSP reports" in out.getvalue()


def test_reports_missing_store_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    con, _ = console()
    args = argparse.Namespace(store=f"sqlite:///{tmp_path}/none.db", json=False, limit=50)
    assert run_reports(args, con) == 1
    err = capsys.readouterr().err
    assert err.startswith("sitewarden: error:") and err.count("\n") == 1
    assert not (tmp_path / "none.db").exists()


def test_reports_bad_url_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    con, _ = console()
    assert run_reports(argparse.Namespace(store="ftp://x", json=False, limit=5), con) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_reports_limit_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["reports", "--limit", "0"])


def test_sri_lines(tmp_path: Path) -> None:
    a = tmp_path / "a.js"
    b = tmp_path / "b [x].css"
    a.write_bytes(b"alert('Hello, world.');")
    b.write_bytes(b"body{}")
    con, out = console()
    args = parser().parse_args(["sri", str(a), str(b)])
    assert run_sri(args, con) == 0
    assert out.getvalue().splitlines() == [
        f"{integrity(a.read_bytes())}  {a}",
        f"{integrity(b.read_bytes())}  {b}",
    ]


def test_sri_algorithm(tmp_path: Path) -> None:
    a = tmp_path / "a.js"
    a.write_bytes(b"x")
    con, out = console()
    assert run_sri(parser().parse_args(["sri", "--algorithm", "sha512", str(a)]), con) == 0
    assert out.getvalue().startswith("sha512-")
    with pytest.raises(SystemExit):
        parser().parse_args(["sri", "--algorithm", "md5", str(a)])


def test_sri_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = tmp_path / "a.js"
    a.write_bytes(b"x")
    con, out = console()
    args = parser().parse_args(["sri", str(tmp_path / "missing.js"), str(a), str(tmp_path)])
    assert run_sri(args, con) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"sitewarden: error: {tmp_path / 'missing.js'}: no such file",
        f"sitewarden: error: {tmp_path}: is a directory",
    ]
    assert out.getvalue() == f"{integrity(b'x')}  {a}\n"  # the readable file is still done
