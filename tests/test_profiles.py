"""Profile format: the example profile, strict validation with file:line, discovery."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from opsconsole.errors import ProfileError, UsageError
from opsconsole.profiles import SecretRef, load_profile, parse_profile_text, resolve_profile_path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "profiles" / "example.toml"


def errors_of(text: str, name: str = "x.toml") -> list[str]:
    with pytest.raises(ProfileError) as info:
        parse_profile_text(text, Path("profiles") / name)
    return info.value.problems


def test_example_profile_gives_every_key_its_meaning() -> None:
    profile = load_profile(EXAMPLE)
    assert profile.project_name == "shop"
    assert profile.defaults.user == "deploy"
    assert profile.defaults.timeout == 5.0 and profile.defaults.refresh == 5.0
    assert profile.defaults.known_hosts == "~/.ssh/known_hosts"
    staging = profile.env("staging")
    assert [h.raw for h in staging.hosts] == ["staging-1.example.com"]
    assert staging.color == "yellow" and not staging.protected
    assert staging.health == ("https://staging.example.com/healthz",)
    assert staging.supervisor is not None and staging.supervisor.url == "unix:///var/run/supervisor.sock"
    assert staging.docker is not None and staging.docker.url == "unix:///var/run/docker.sock"
    assert staging.sentry is not None and staging.sentry.token == SecretRef("sentry-token")
    assert staging.sentry.organization == "acme" and staging.sentry.environment == "staging"
    assert staging.deploy is not None and staging.deploy.keep_releases == 5
    assert staging.deploy.shared == (".env", "media") and len(staging.deploy.build) == 5
    assert staging.deploy.restart == ("supervisor:shop-web", "supervisor:shop-worker")
    assert staging.cache is not None and staging.cache.purge == ("redis-cli -n 1 FLUSHDB",)
    assert staging.logs is not None and staging.logs.files == ("/var/log/nginx/error.log",)
    assert staging.actions[0].name == "reload-nginx" and staging.actions[0].confirm
    production = profile.env("production")
    assert production.protected and production.color == "red"
    web2 = production.hosts[1]
    assert (web2.user, web2.hostname, web2.port) == ("deploy", "web-2.example.com", 2222)
    assert production.docker is None and production.sentry is None  # not configured, not an error
    assert profile.keymap == {"deploy": "D"}


def test_profile_is_immutable() -> None:
    profile = load_profile(EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.env("staging").protected = True  # type: ignore[misc]


def test_empty_profile_is_valid_and_everything_not_configured() -> None:
    profile = parse_profile_text("", Path("empty.toml"))
    assert profile.environments == {}
    env = parse_profile_text("[environments.a]\n", Path("a.toml")).env("a")
    assert env.supervisor is None and env.hosts == ()


def test_unknown_key_names_file_line_path_and_suggestion() -> None:
    text = '[environments.stagin.deploy]\npath = "/srv"\nrepo = "r"\n\nkeep_release = 3\n'
    assert errors_of(text) == [
        "profiles/x.toml:5: unknown key 'environments.stagin.deploy.keep_release' (did you mean 'keep_releases'?)"
    ]


def test_wrong_types_are_reported_with_lines() -> None:
    text = '[defaults]\ntimeout = "5"\n\n[environments.a]\nhosts = "web-1"\nprotected = "yes"\n'
    problems = errors_of(text)
    assert "profiles/x.toml:2: 'defaults.timeout' must be a number of seconds, not a string" in problems
    assert "profiles/x.toml:5: 'environments.a.hosts' must be an array of strings, not a string" in problems
    assert "profiles/x.toml:6: 'environments.a.protected' must be true or false, not a string" in problems


def test_literal_secret_is_refused() -> None:
    text = '[environments.a.sentry]\norganization = "o"\nproject = "p"\ntoken = "sntrys_abc"\n'
    (problem,) = errors_of(text)
    assert problem.startswith(
        "profiles/x.toml:4: 'environments.a.sentry.token' must name a secret, not hold one"
    )
    assert "sntrys_abc" not in problem


def test_missing_required_key_points_at_its_table() -> None:
    text = '[environments.a]\nhosts = []\n\n[environments.a.deploy]\npath = "/srv"\n'
    assert errors_of(text) == [
        "profiles/x.toml:4: 'environments.a.deploy' is missing the required key 'repo'"
    ]


def test_invalid_toml_reports_line_and_column() -> None:
    (problem,) = errors_of('[project]\nname = "x"\nbad = = 1\n')
    assert problem.startswith("profiles/x.toml:3:7: invalid TOML")


def test_bad_hosts_urls_and_keymap() -> None:
    text = (
        '[environments.a]\nhosts = ["local", "u@h:99999", "bad host"]\nhealth = ["ftp://x"]\n'
        '[environments.a.supervisor]\nurl = "/var/run/s.sock"\n[keymap]\ndeplyo = "d"\n'
    )
    problems = errors_of(text)
    assert any("port 99999" in p and p.startswith("profiles/x.toml:2:") for p in problems)
    assert any("'bad host' is not a host" in p for p in problems)
    assert any(p.startswith("profiles/x.toml:3:") and "http://" in p for p in problems)
    assert any(p.startswith("profiles/x.toml:5:") and "unix://" in p for p in problems)


def test_keymap_ids_come_from_the_console_screens(tmp_path: Path, run_cli: Any) -> None:
    """Unknown ids are refused by `profile validate` and by the console, with file:line; every id
    of every screen (log viewer, action screen, palette...) is accepted."""
    from opsconsole.screens.keymap import binding_ids

    ids = binding_ids()
    assert {
        "deploy",
        "start_stop",
        "log_wrap",
        "action_cancel",
        "confirm_cancel",
        "palette",
        "cursor_down",
    } <= ids
    good = tmp_path / "good.toml"
    good.write_text("[keymap]\n" + "".join(f'{i} = "f{n % 12 + 1}"\n' for n, i in enumerate(sorted(ids))))
    assert run_cli("profile", "validate", str(good)).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[environments.a]\nhosts = ["local"]\n[keymap]\ndeplyo = "d"\n')
    for args in (("profile", "validate", str(bad)), ("--profile", str(bad))):
        done = run_cli(*args)
        assert done.returncode == 2
        assert "bad.toml:4: unknown binding id 'keymap.deplyo' (did you mean 'deploy'?)" in done.stderr


def test_array_of_tables_errors_point_at_their_entry() -> None:
    text = (
        '[[environments.a.actions]]\nname = "ok"\ncommand = "true"\n\n'
        '[[environments.a.actions]]\nname = "two"\ncomand = "true"\n'
    )
    problems = errors_of(text)
    assert (
        "profiles/x.toml:7: unknown key 'environments.a.actions[1].comand' (did you mean 'command'?)"
        in problems
    )
    assert "profiles/x.toml:5: 'environments.a.actions[1]' is missing the required key 'command'" in problems


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_dirs: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="no profile found"):
        resolve_profile_path(None)
    config = isolated_dirs / "config"
    config.mkdir(parents=True)
    (config / "mine.toml").write_text("")
    assert resolve_profile_path(None) == config / "mine.toml"
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "local.toml").write_text("")
    assert resolve_profile_path(None).resolve() == (tmp_path / "profiles" / "local.toml").resolve()
    monkeypatch.setenv("OPSCONSOLE_PROFILE", "mine")
    assert resolve_profile_path(None) == config / "mine.toml"
    assert resolve_profile_path("local").resolve() == (tmp_path / "profiles" / "local.toml").resolve()
    explicit = tmp_path / "elsewhere.toml"
    explicit.write_text("")
    assert resolve_profile_path(str(explicit)) == explicit
    with pytest.raises(UsageError, match="did you mean 'mine'"):
        resolve_profile_path("mne")
    (tmp_path / "profiles" / "other.toml").write_text("")
    monkeypatch.delenv("OPSCONSOLE_PROFILE")
    with pytest.raises(UsageError, match="several profiles"):
        resolve_profile_path(None)
