"""`opsconsole profile ...` and `--version` as a user runs them."""

from __future__ import annotations

import tomllib
from pathlib import Path

from opsconsole import __version__

REPO = Path(__file__).resolve().parent.parent


def test_version(run_cli) -> None:
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"opsconsole {__version__}"


def test_validate_example_exits_0(run_cli) -> None:
    done = run_cli("profile", "validate", str(REPO / "profiles" / "example.toml"))
    assert done.returncode == 0, done.stderr
    assert "valid (staging, production)" in done.stdout


def test_validate_reports_every_error_and_exits_2(run_cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[environments.a]\nhost = ["x"]\n[environments.a.sentry]\norganization = "o"\nproject = "p"\ntoken = "literal-token"\n'
    )
    done = run_cli("profile", "validate", str(bad), str(REPO / "profiles" / "example.toml"))
    assert done.returncode == 2
    assert "bad.toml:2: unknown key 'environments.a.host' (did you mean 'hosts'?)" in done.stderr
    assert "bad.toml:6: 'environments.a.sentry.token' must name a secret" in done.stderr
    assert "literal-token" not in done.stderr
    assert "example.toml: valid" in done.stdout


def test_list_and_show_mask_secrets(run_cli, tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "shop.toml").write_text((REPO / "profiles" / "example.toml").read_text())
    listed = run_cli("profile", "list")
    assert listed.returncode == 0 and "shop" in listed.stdout and "staging, production" in listed.stdout
    shown = run_cli("profile", "show", "shop", env={"OPSCONSOLE_SECRET_SENTRY_TOKEN": "very-secret-1"})
    assert shown.returncode == 0, shown.stderr
    assert "very-secret-1" not in shown.stdout
    assert "<secret sentry-token: from environment>" in shown.stdout
    assert 'docker = "not configured"' in shown.stdout  # production has no docker section


def test_init_writes_valid_profile_and_never_overwrites(run_cli, tmp_path: Path) -> None:
    target = tmp_path / "new.toml"
    args = ["profile", "init", "local", "-o", str(target), "--name", "new", "--env", "production"]
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    data = tomllib.loads(target.read_text())
    assert data["environments"]["production"]["hosts"] == ["local"]
    assert data["environments"]["production"]["protected"] is True
    assert run_cli("profile", "validate", str(target)).returncode == 0
    again = run_cli(*args)
    assert again.returncode == 2 and "never overwrites" in again.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".new.toml")]
    assert leftovers == []


def test_init_default_location_is_user_config_dir(run_cli, isolated_dirs: Path) -> None:
    config = {"OPSCONSOLE_CONFIG_DIR": str(isolated_dirs / "config")}
    done = run_cli("profile", "init", "local", "--name", "mine", env=config)
    assert done.returncode == 0, done.stderr
    assert (isolated_dirs / "config" / "mine.toml").is_file()
