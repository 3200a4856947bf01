"""The ``events`` command (run_events and its parser)."""

from __future__ import annotations

import argparse
import io
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from sitewarden.cli_events import add_events_parser, run_events
from sitewarden.events_store import EventRecorder
from sitewarden.store import open_store

NOW = time.time()
HOSTILE_PATH = "/a\x1b[2J\x1b]0;pwned\x07[red]x[/red]\u202egnp.exe\x9b1m\ud800"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sitewarden")
    commands = p.add_subparsers(dest="command")
    add_events_parser(commands)
    return p


def console(*, color: bool = False) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    if color:  # a real terminal: markup would turn into escape sequences
        return Console(file=out, width=300, force_terminal=True, color_system="truecolor"), out
    return Console(file=out, width=300, color_system=None), out


class Clock:
    def __call__(self) -> float:
        return 0.0


def fill(url: str, records: list[dict[str, Any]]) -> None:
    store = open_store(url)
    recorder = EventRecorder(store, burst=10_000, clock=Clock())
    for record in records:
        level = logging.ERROR if record["event"] == "store.unavailable" else logging.WARNING
        recorder(record, level)
    store.close()


def sample(n: int = 5) -> list[dict[str, Any]]:
    names = ["login.failure", "csrf.refused", "ban.added", "login.success", "store.unavailable"]
    now = time.time()  # not NOW: in a long test run, minutes may pass after import
    return [
        {
            "event": names[i % len(names)],
            "time": now - (n - i) * 60,  # one a minute, the last a minute ago
            "client": f"192.0.2.{i}",
            "host": "example.org",
            "method": "POST",
            "path": f"/p{i}",
            "login": f"user{i}",
            "reason": f"reason {i}",
            "n": i,
        }
        for i in range(n)
    ]


def run(args: list[str]) -> tuple[int, str]:
    con, out = console()
    status = run_events(parser().parse_args(["events", *args]), con)
    return status, out.getvalue()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/state.db"


def test_json_lines_are_oldest_first(url: str) -> None:
    fill(url, sample(5))
    status, text = run(["--store", url, "--json", "--limit", "3"])
    assert status == 0
    lines = text.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["n"] for d in docs] == [2, 3, 4]  # the newest three, oldest first
    assert all(line.startswith('{"event": "') for line in lines)  # the log's shape
    assert docs[2]["severity"] == "error" and docs[0]["severity"] == "warning"


def test_table_is_newest_first_with_the_columns(url: str) -> None:
    records = sample(3)
    fill(url, records)
    status, text = run(["--store", url])
    assert status == 0
    for column in ("time (UTC)", "event", "client", "user / login", "path", "reason"):
        assert column in text
    rows = [line for line in text.splitlines() if "192.0.2." in line]
    assert [re.search(r"192\.0\.2\.(\d)", r).group(1) for r in rows] == ["2", "1", "0"]  # type: ignore[union-attr]
    assert "POST /p2" in rows[0] and "user2" in rows[0] and "reason 2" in rows[0]
    assert "n=2" in rows[0]  # further fields follow the reason
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(records[2]["time"]))
    assert stamp in rows[0]


def test_type_and_since_filter(url: str) -> None:
    fill(url, sample(10))
    _, text = run(["--store", url, "--json", "--type", "login."])
    assert {json.loads(line)["event"] for line in text.splitlines()} == {
        "login.failure",
        "login.success",
    }
    _, text = run(["--store", url, "--json", "--since", "150"])  # the last 2.5 minutes
    assert [json.loads(line)["n"] for line in text.splitlines()] == [8, 9]
    _, text = run(["--store", url, "--json", "--since", "3m", "--type", "ban"])
    assert text == ""


def test_hostile_text_is_cleaned_in_the_table(url: str) -> None:
    fill(
        url,
        [
            {
                "event": "csrf.refused",
                "time": NOW,
                "client": "192.0.2.66",
                "path": HOSTILE_PATH,
                "login": "[bold]admin[/bold]\r\n",
                "reason": "x" * 5000,
            }
        ],
    )
    con, out = console(color=True)
    assert run_events(parser().parse_args(["events", "--store", url]), con) == 0
    text = out.getvalue()
    cells = re.sub(r"\x1b\[[0-9;]*m", "", text)  # the table's own styling
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e\ud800]", cells)
    assert "[red]x[/red]" in cells and "[bold]admin[/bold]" in cells  # shown, not obeyed
    assert "gnp.exe" in cells and "pwned" in cells  # the text itself is kept
    assert "x" * 200 not in cells and "…" in cells  # a 5000-character cell is shortened


def test_hostile_text_is_escaped_in_json(url: str) -> None:
    fill(url, [{"event": "csrf.refused", "time": NOW, "path": HOSTILE_PATH}])
    con, out = console(color=True)
    assert run_events(parser().parse_args(["events", "--store", url, "--json"]), con) == 0
    [line] = out.getvalue().splitlines()
    assert line.isascii() and not re.search(r"[\x00-\x1f\x7f]", line)
    assert json.loads(line)["path"] == HOSTILE_PATH  # escaped, not altered


def test_empty_store(url: str) -> None:
    open_store(url).close()
    status, text = run(["--store", url])
    assert status == 0 and "No security events" in text
    assert run(["--store", url, "--json"]) == (0, "")  # no lines at all for pipelines


def test_missing_store_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    con, _ = console()
    args = argparse.Namespace(store=f"sqlite:///{tmp_path}/none.db", json=False, limit=5)
    assert run_events(args, con) == 1
    err = capsys.readouterr().err
    assert err.startswith("sitewarden: error:") and err.count("\n") == 1
    assert not (tmp_path / "none.db").exists()  # inspecting never creates a store


def test_bad_url_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    con, _ = console()
    assert run_events(argparse.Namespace(store="ftp://x", json=False), con) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_redis_store(redis_url: str) -> None:
    fill(redis_url, sample(2))
    status, text = run(["--store", redis_url, "--json"])
    assert status == 0 and [json.loads(x)["n"] for x in text.splitlines()] == [0, 1]


@pytest.mark.parametrize(
    "argv",
    [
        ["--limit", "0"],
        ["--limit", "x"],
        ["--since", "0"],
        ["--since", "-5"],
        ["--since", "soon"],
        ["--since", "nan"],
        ["--since", "inf"],
    ],
)
def test_bad_arguments_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["events", *argv])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("15m", 900), ("2h", 7200), ("1d", 86400)]
)
def test_since_units(text: str, seconds: float) -> None:
    assert parser().parse_args(["events", "--since", text]).since == seconds
