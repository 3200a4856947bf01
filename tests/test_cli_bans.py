"""The ``bans`` command: ``list`` and ``unban`` (run_bans and its parser)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from sitewarden.cli_bans import add_bans_parser, run_bans
from sitewarden.guards.bans import BanList
from sitewarden.policy import load_policy
from sitewarden.store import open_store


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sitewarden")
    commands = p.add_subparsers(dest="command")
    add_bans_parser(commands)
    return p


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=300, color_system=None), out


def ban(url: str, *clients: str, reason: str | None = None) -> None:
    with open_store(url) as store:
        bans = BanList(load_policy(ban_after=1), store)
        for client in clients:
            bans.breach(bans.client_key(client), reason)


def run(*argv: str) -> tuple[int, str]:
    args = parser().parse_args(list(argv))
    con, out = console()
    return run_bans(args, con), out.getvalue()


def test_list_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    ban(url, "203.0.113.9", "2001:db8:1:2::7")
    status, out = run("bans", "list", "--store", url, "--json")
    assert status == 0
    doc = json.loads(out)
    assert doc["store"] == url
    clients = sorted(b["client"] for b in doc["bans"])
    assert clients == ["2001:db8:1:2::/64", "203.0.113.9"]
    first = doc["bans"][0]
    assert first["level"] == 1
    assert 595 <= first["seconds_left"] <= 600
    assert "breach" in first["reason"]


def test_list_table_shows_text_literally(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    ban(url, "203.0.113.9", reason="[bold]scanner[/bold]")
    status, out = run("bans", "list", "--store", url)
    assert status == 0
    assert "203.0.113.9" in out
    assert "[bold]scanner[/bold]" in out  # no Rich markup from stored text
    assert "10 min" in out or "9 min" in out


def test_list_empty(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    open_store(url).close()
    status, out = run("bans", "list", "--store", url)
    assert status == 0
    assert "No bans" in out


def test_unban(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    ban(url, "203.0.113.9", "2001:db8:1:2::7")
    status, out = run("bans", "unban", "203.0.113.9", "--store", url)
    assert status == 0
    assert "Lifted" in out
    status, out = run("bans", "unban", "2001:db8:1:2::ffff", "--store", url)
    assert status == 0
    status, out = run("bans", "list", "--store", url, "--json")
    assert json.loads(out)["bans"] == []
    status, out = run("bans", "unban", "203.0.113.9", "--store", url)
    assert status == 1
    assert "No ban for 203.0.113.9" in out


def test_missing_store_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/nothing-here.db"
    status, _ = run("bans", "list", "--store", url)
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("sitewarden: error:")
    assert err.count("\n") == 1
    assert not (tmp_path / "nothing-here.db").exists()  # inspecting never creates a store


def test_bad_url_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _ = run("bans", "unban", "203.0.113.9", "--store", "postgres://db/x")
    assert status == 2
    assert "store" in capsys.readouterr().err


def test_store_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/env.db"
    ban(url, "203.0.113.9")
    monkeypatch.setenv("SITEWARDEN_STORE", url)
    status, out = run("bans", "list", "--json")
    assert status == 0
    assert [b["client"] for b in json.loads(out)["bans"]] == ["203.0.113.9"]


def test_action_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parser().parse_args(["bans"])
    assert info.value.code == 2
