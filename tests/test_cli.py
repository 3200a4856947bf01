"""The sitewarden command: keyring init/show/rotate, demo, and clean failures."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sitewarden.cli import main
from sitewarden.keyring import DEFAULT_RINGS, KeyManager, fingerprint
from sitewarden.store import open_store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_no_secret_in(text: str, keys: KeyManager) -> None:
    for name in keys.names():
        for secret in keys.stored_ring(name).secrets:
            for form in (secret.hex(), base64.b64encode(secret).decode(), secret.hex().upper()):
                assert form not in text


def test_init_show_rotate_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    code, out, _ = run(capsys, "keyring", "init", "--store", url, "--json")
    assert code == 0
    report = json.loads(out)
    assert set(report["rings"]) == set(DEFAULT_RINGS)
    keys = KeyManager(open_store(url))
    for name, info in report["rings"].items():
        ring = keys.stored_ring(name)
        assert info["size"] == 5
        assert info["fingerprints"] == [fingerprint(s) for s in ring.secrets]
        assert info["last_rotation"] == ring.last_rotation
        assert info["last_rotation_utc"].endswith("+00:00")

    code, out, _ = run(capsys, "keyring", "show", "--store", url, "--json", "--ring", "forms")
    assert code == 0
    before = json.loads(out)["rings"]["forms"]["fingerprints"]
    assert list(json.loads(out)["rings"]) == ["forms"]

    code, out, _ = run(capsys, "keyring", "rotate", "--store", url, "--ring", "forms", "--json")
    assert code == 0
    after = json.loads(out)["rings"]["forms"]["fingerprints"]
    assert after[1:] == before[:4]
    assert after[0] not in before

    code, out, _ = run(capsys, "keyring", "rotate", "--store", url, "--json")
    assert code == 0
    assert set(json.loads(out)["rings"]) == set(DEFAULT_RINGS)

    code, out, _ = run(capsys, "keyring", "rotate", "--store", url, "--ring", "anon", "--reset")
    assert code == 0
    assert "anon" in out
    keys.refresh()
    assert_no_secret_in(out, keys)


def test_output_never_contains_a_secret(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    outputs = []
    for argv in (
        ("keyring", "init", "--store", url),
        ("keyring", "show", "--store", url),
        ("keyring", "show", "--store", url, "--json"),
        ("keyring", "rotate", "--store", url),
    ):
        code, out, err = run(capsys, *argv)
        assert code == 0
        outputs.append(out + err)
    keys = KeyManager(open_store(url))
    assert_no_secret_in("\n".join(outputs), keys)


def test_show_does_not_create_a_store(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    code, _, err = run(capsys, "keyring", "show", "--store", f"sqlite:///{path}")
    assert code == 1
    assert "no store" in err
    assert not path.exists()


def test_store_from_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SITEWARDEN_STORE", f"sqlite:///{tmp_path}/env.db")
    assert run(capsys, "keyring", "init")[0] == 0
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("keyring", "show", "--store", "ftp://x"), 2, "unknown store URL"),
        (("keyring", "rotate", "--reset", "--store", "memory://"), 2, "--reset needs --ring"),
        (
            ("keyring", "rotate", "--reset", "--ring", "totp", "--store", "memory://"),
            2,
            "--reset of the totp ring is refused",
        ),
        (("keyring", "show", "--store", "memory://"), 2, "no keyrings"),
        (("keyring", "rotate", "--store", "memory://", "--ring", "x"), 1, "no keyring named"),
    ],
)
def test_failures_are_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], code: int, message: str
) -> None:
    got, out, err = run(capsys, *argv)
    assert got == code
    assert message in err
    assert "Traceback" not in err + out
    assert err.startswith("sitewarden: error: ")


def test_damaged_store_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database" * 100)
    code, _, err = run(capsys, "keyring", "init", "--store", f"sqlite:///{path}")
    assert code == 1
    assert "left untouched" in err
    assert path.read_bytes() == b"not a database" * 100


def test_walkthrough_runs_and_keeps_its_keyring(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = str(tmp_path / "walk")
    code, out, _ = run(capsys, "walkthrough", "--state-dir", state)
    assert code == 0, out
    assert "All protections held" in out
    assert "UNEXPECTED" not in out
    code, out, _ = run(capsys, "walkthrough", "--state-dir", state)
    assert code == 0
    assert "loaded" in out


def test_console_script_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sitewarden.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert "keyring" in result.stdout
    assert "demo" in result.stdout
