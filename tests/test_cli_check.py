"""``sitewarden check``: text and JSON output, exit statuses, store and keyring audit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sitewarden.cli import main
from sitewarden.keyring import KeyManager
from tests.test_cli import assert_no_secret_in

STRICT = """
[sitewarden]
preset = "strict"
allowed_hosts = ["example.org"]
rate_limits = { "POST /login" = "10/minute" }
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sitewarden.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_strict_settings_pass_clean(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    settings = write(tmp_path, STRICT)
    url = f"sqlite:///{tmp_path}/state.db"
    KeyManager.open(url).close()
    os.chmod(tmp_path, 0o700)
    os.chmod(tmp_path / "state.db", 0o600)
    code, out, _ = run(capsys, "check", "--settings", settings, "--store", url, "--deploy")
    assert code == 0, out
    assert "0 finding(s): no findings" in out
    code, out, _ = run(capsys, "check", "--settings", settings, "--store", "memory://",
                       "--format", "json")  # fmt: skip
    report = json.loads(out)
    assert code == 0 and report["findings"] == [] and report["counts"]["high"] == 0


def test_text_table_and_fail_level(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    settings = write(tmp_path, STRICT + 'csrf = "off"\nhttps_redirect = false\n')
    code, out, _ = run(capsys, "check", "--settings", settings, "--store", "memory://",
                       "--deploy")  # fmt: skip
    assert code == 1
    for text in ("SW040", "critical", "SW002", "https_redirect", "SW103", "finding(s)"):
        assert text in out
    code, out, _ = run(capsys, "check", "--settings", settings, "--store", "memory://")
    assert "SW002" not in out and "SW040" in out and code == 1  # deploy-only skipped
    # medium findings only: below the default fail level
    settings = write(tmp_path, STRICT + 'on_store_failure = "open"\n')
    assert run(capsys, "check", "--settings", settings, "--store", "memory://")[0] == 0
    code, _, _ = run(capsys, "check", "--settings", settings, "--store", "memory://",
                     "--fail-level", "medium")  # fmt: skip
    assert code == 1


def test_json_upstream_recorded(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    settings = write(
        tmp_path,
        STRICT + 'https_redirect = false\nhandled_upstream = ["https_redirect"]\n'
        'trusted_proxies = ["10.0.0.0/8"]\n',
    )
    code, out, _ = run(capsys, "check", "--settings", settings, "--store", "memory://",
                       "--deploy", "--format", "json")  # fmt: skip
    report = json.loads(out)
    assert code == 0
    (finding,) = [f for f in report["findings"] if f["id"] == "SW002"]
    assert finding["severity"] == "info" and finding["upstream"] is True
    assert report["counts"]["info"] >= 1


def test_preset_option_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--preset", "basic", "--store", "memory://",
                       "--deploy", "--format", "json")  # fmt: skip
    assert code == 0
    assert [f["id"] for f in json.loads(out)["findings"]] == ["SW004", "SW060", "SW103"]


def test_store_and_keyring_audit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    keys = KeyManager.open(url)
    forms = keys.stored_ring("forms")
    raw = forms.to_json()
    keys.store.update(KeyManager.store_key("anon"), lambda _old: raw)  # same secrets reused
    os.chmod(tmp_path / "state.db", 0o644)
    settings = write(tmp_path, STRICT)
    code, out, err = run(capsys, "check", "--settings", settings, "--store", url,
                         "--format", "json")  # fmt: skip
    found = {f["id"] for f in json.loads(out)["findings"]}
    assert code == 1 and {"SW091", "SW100"} <= found, (out, err)
    code, text, _ = run(capsys, "check", "--settings", settings, "--store", url)
    assert "SW091" in text
    assert_no_secret_in(out + text, keys)
    keys.close()


def test_unreadable_store_is_noted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    settings = write(tmp_path, STRICT)
    code, out, _ = run(capsys, "check", "--settings", settings,
                       "--store", f"sqlite:///{tmp_path}/none.db", "--format", "json")  # fmt: skip
    assert code == 0
    assert [f["id"] for f in json.loads(out)["findings"]] == ["SW099"]


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    settings = write(tmp_path, '[sitewarden]\ncsrf = "maybe"\n')
    code, _, err = run(capsys, "check", "--settings", settings)
    assert code == 2 and err.startswith("sitewarden: error:") and "csrf" in err
    code, _, err = run(capsys, "check", "--settings", str(tmp_path / "missing.toml"))
    assert code == 2
    code, _, err = run(capsys, "check", "--store", "ftp://x", "--preset", "strict")
    assert code == 2 and "unknown store URL" in err
    with pytest.raises(SystemExit) as exc:
        main(["check", "--fail-level", "severe"])
    assert exc.value.code == 2
