"""The ``lockout`` command: ``list`` and ``unlock`` (run_lockout and its parser)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from sitewarden.cli_lockout import add_lockout_parser, run_lockout
from sitewarden.guards.lockout import Lockout
from sitewarden.keyring import KeyManager
from sitewarden.policy import load_policy
from sitewarden.store import open_store


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sitewarden")
    commands = p.add_subparsers(dest="command")
    add_lockout_parser(commands)
    return p


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=300, color_system=None), out


def run(*argv: str) -> tuple[int, str]:
    con, out = console()
    status = run_lockout(parser().parse_args(["lockout", *argv]), con)
    return status, out.getvalue()


def lock(url: str, *logins: str, address: str = "192.0.2.1", **settings: object) -> None:
    """Lock each login (and, with a low address threshold, the address) in the store at *url*."""
    store = open_store(url)
    lockout = Lockout(load_policy(**settings), store, KeyManager.open(store))
    for login in logins:
        for i in range(5):
            lockout.failure(login, address, f"pw{i}")
    store.close()


def status(url: str, login: str, address: str | None = None, **settings: object) -> bool:
    store = open_store(url)
    try:
        return (
            Lockout(load_policy(**settings), store, KeyManager(store)).status(login, address).locked
        )
    finally:
        store.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/state.db"


def test_list_json(url: str) -> None:
    lock(url, "Alice", "bob", lockout_address_threshold=10)
    code, out = run("list", "--store", url, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["store"] == url
    assert [(r["scope"], r["name"], r["failures"], r["level"]) for r in doc["locked"]] == [
        ("account", "alice", 5, 1),
        ("account", "bob", 5, 1),
        ("address", "192.0.2.1", 10, 1),
    ]
    assert all(295 <= r["retry_after"] <= 300 for r in doc["locked"])
    assert all(isinstance(r["until"], float) for r in doc["locked"])


def test_list_table_shows_names_literally(url: str) -> None:
    lock(url, "[bold]x[/bold]\x1b[31mred")
    code, out = run("list", "--store", url)
    assert code == 0
    assert "[bold]x[/bold][31mred" in out  # markup shown as text, the escape removed
    assert "\x1b" not in out
    assert "account" in out and ("5m 00s" in out or "4m 59s" in out)


def test_list_empty(url: str) -> None:
    open_store(url).close()
    assert run("list", "--store", url) == (0, f"No locks in {url}.\n")
    code, out = run("list", "--store", url, "--json")
    assert code == 0 and json.loads(out) == {"store": url, "locked": []}


def test_unlock_login_any_spelling(url: str) -> None:
    lock(url, "alice")
    assert status(url, "alice")
    code, out = run("unlock", "ALICE ", "--store", url)
    assert code == 0 and out.startswith("Unlocked login 'ALICE '")
    assert not status(url, "alice")
    code, out = run("unlock", "alice", "--store", url)
    assert code == 0 and "was not locked" in out


def test_unlock_address(url: str) -> None:
    lock(url, "a", "b", "c", "d", address="2001:db8::5")
    assert status(url, "zed", "2001:db8::99")
    code, out = run("unlock", "--address", "2001:db8::/64", "--store", url)
    assert code == 0 and "Unlocked address 2001:db8::/64" in out
    assert not status(url, "zed", "2001:db8::99")
    assert status(url, "a")  # the accounts stay locked


def test_unlock_address_uses_the_sites_ipv6_prefix(url: str, tmp_path: Path) -> None:
    settings = tmp_path / "sitewarden.toml"
    settings.write_text("[sitewarden]\nrate_limit_ipv6_prefix = 48\n")
    lock(url, "a", "b", "c", "d", address="2001:db8:0:7::5", rate_limit_ipv6_prefix=48)
    code, out = run("unlock", "--address", "2001:db8:0:9::1", "--store", url)
    assert code == 0 and "was not locked" in out  # the default /64 is another counter
    code, out = run(
        "unlock", "--address", "2001:db8:0:9::1", "--store", url, "--settings", str(settings)
    )
    assert code == 0 and out.startswith("Unlocked")


def test_unlock_bad_address_is_one_line(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    open_store(url).close()
    code, out = run("unlock", "--address", "not-an-ip", "--store", url)
    assert code == 2 and out == ""
    err = capsys.readouterr().err
    assert err == "sitewarden: error: 'not-an-ip' is not an IP address or network\n"


def test_missing_store_is_one_line_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["list"], ["unlock", "alice"]):
        code, _ = run(*argv, "--store", f"sqlite:///{tmp_path}/none.db")
        assert code == 1
        err = capsys.readouterr().err
        assert err.startswith("sitewarden: error:") and err.count("\n") == 1
    assert not (tmp_path / "none.db").exists()


def test_bad_url_and_bad_settings_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("list", "--store", "ftp://x")[0] == 2
    assert capsys.readouterr().err.count("\n") == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("lockout_threshold = 0\n")
    assert run("list", "--store", "memory://", "--settings", str(bad))[0] == 2
    err = capsys.readouterr().err
    assert "lockout_threshold" in err and err.count("\n") == 1


def test_store_url_from_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lock(url, "alice")
    monkeypatch.setenv("SITEWARDEN_STORE", url)
    code, out = run("list", "--json")
    assert code == 0 and [r["name"] for r in json.loads(out)["locked"]] == ["alice"]


def test_parser_requires_an_action() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["lockout"])
    with pytest.raises(SystemExit):
        parser().parse_args(["lockout", "unlock"])
    con, _ = console()
    assert run_lockout(argparse.Namespace(store="memory://", action="purge"), con) == 2
