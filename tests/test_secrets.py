"""Secrets: environment variable, then a real keyring backend; never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole import secrets
from opsconsole.errors import SecretError
from opsconsole.profiles import SecretRef

PROFILE = """
[environments.staging]
hosts = ["local"]
[environments.staging.supervisor]
url = "unix:///tmp/none.sock"
password = { secret = "sup-pass" }
[environments.staging.sentry]
organization = "acme"
project = "shop"
token = { secret = "sentry-token" }
"""


def test_env_var_name() -> None:
    assert secrets.env_var("sentry-token") == "OPSCONSOLE_SECRET_SENTRY_TOKEN"


def test_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCONSOLE_SECRET_SENTRY_TOKEN", "from-env-123")
    secret = secrets.resolve(SecretRef("sentry-token"))
    assert secret.reveal() == "from-env-123"
    assert "from-env-123" not in repr(secret) and "from-env-123" not in str(secret)
    assert secrets.redact("Bearer from-env-123 failed") == "Bearer *** failed"


def test_no_keyring_backend_says_how_to_supply(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(SecretError) as info:
            secrets.resolve(SecretRef("sentry-token"))
    finally:
        keyring.set_keyring(previous)
    assert "OPSCONSOLE_SECRET_SENTRY_TOKEN" in info.value.message
    assert "keyring" in info.value.message


def test_set_check_delete_round_trip_through_real_keyring(
    run_cli, file_keyring: dict[str, str], tmp_path: Path
) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(PROFILE)
    value = "tok-9f8e7d6c5b4a"
    done = run_cli("secret", "set", "sentry-token", input=value + "\n", env=file_keyring)
    assert done.returncode == 0, done.stderr
    assert value not in done.stdout + done.stderr
    stored = (Path(file_keyring["XDG_DATA_HOME"]) / "python_keyring" / "keyring_pass.cfg").read_text()
    assert "sentry_2dtoken" in stored and value not in stored  # really in the backend's (base64) store

    check = run_cli("--profile", str(profile), "secret", "check", env=file_keyring)
    assert check.returncode == 2  # sup-pass is missing
    assert "ok       sentry-token" in check.stdout and "from keyring" in check.stdout
    assert "MISSING  sup-pass" in check.stdout and "OPSCONSOLE_SECRET_SUP_PASS" in check.stdout
    assert value not in check.stdout + check.stderr

    env = {**file_keyring, "OPSCONSOLE_SECRET_SUP_PASS": "pw-123456"}
    check = run_cli("--profile", str(profile), "secret", "check", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "sup-pass" in check.stdout and "from environment" in check.stdout
    assert "pw-123456" not in check.stdout

    assert run_cli("secret", "delete", "sentry-token", env=file_keyring).returncode == 0
    gone = run_cli("secret", "delete", "sentry-token", env=file_keyring)
    assert gone.returncode == 2 and "not in the keyring" in gone.stderr


def test_secret_set_refuses_empty(run_cli, file_keyring: dict[str, str]) -> None:
    done = run_cli("secret", "set", "x", input="\n", env=file_keyring)
    assert done.returncode == 2 and "nothing stored" in done.stderr
