"""Strict validation of profile TOML into the typed model: converters per key, the table schema,
and problems collected with their key paths (file:line is added by the loader)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- schema
from opsconsole.profiles import alerts_keys, ci_keys
from opsconsole.profiles.convert import (
    Converter,
    Problems,
    boolean,
    count,
    deploy_path,
    dotted,
    health_list,
    hosts,
    nonempty_str,
    one_of,
    positive_float,
    positive_int,
    release_format,
    repository,
    restart,
    secret,
    shared,
    str_list,
    str_table,
    string,
    type_name,
    url,
)
from opsconsole.profiles.fabric_keys import task as fabric_task
from opsconsole.profiles.fabric_keys import tasks as fabric_tasks
from opsconsole.profiles.model import (
    AlertsConfig,
    BugsinkConfig,
    CacheConfig,
    CustomAction,
    Defaults,
    DeployConfig,
    DockerConfig,
    Environment,
    FabricConfig,
    LogsConfig,
    NginxConfig,
    PathKey,
    Profile,
    PrometheusConfig,
    SentryConfig,
    SupervisorConfig,
    SystemdConfig,
    VerifyConfig,
    suggest,
)
from opsconsole.profiles.nginx_keys import log_format as nginx_log_format
from opsconsole.profiles.nginx_keys import upstreams as nginx_upstreams
from opsconsole.profiles.nginx_keys import window as nginx_window
from opsconsole.profiles.systemd_keys import units as systemd_units
from opsconsole.record import frozen


@frozen
class Key:
    convert: Converter
    required: bool = False


@frozen
class Table:
    keys: Mapping[str, Key | Table | TableArray]
    build: Callable[..., Any]
    required: bool = False
    # (required key, its alternative): the alternative given instead satisfies it; not both
    either: tuple[tuple[str, str], ...] = ()


@frozen
class TableArray:
    item: Table
    required: bool = False


_SCHEMES_SUPERVISOR = ("unix", "http", "https")
_SCHEMES_DOCKER = ("unix", "tcp", "http", "https")
_SCHEMES_HTTP = ("http", "https")

SUPERVISOR = Table(
    {"url": Key(url(_SCHEMES_SUPERVISOR)), "username": Key(nonempty_str), "password": Key(secret)},
    SupervisorConfig,
)
DOCKER = Table({"url": Key(url(_SCHEMES_DOCKER)), "labels": Key(str_list)}, DockerConfig)
SENTRY = Table(
    {
        "url": Key(url(_SCHEMES_HTTP)),
        "organization": Key(nonempty_str, required=True),
        "project": Key(nonempty_str, required=True),
        "environment": Key(nonempty_str),
        "token": Key(secret, required=True),
        "releases": Key(boolean),
        "release_format": Key(release_format),
        "release_token": Key(secret),
    },
    SentryConfig,
)
CI = Table(
    {
        "provider": Key(one_of(*ci_keys.PROVIDERS)),
        "repository": Key(repository),  # github; ci_keys.check_ci requires the provider's own key
        "project": Key(ci_keys.project),  # gitlab
        "url": Key(url(_SCHEMES_HTTP)),
        "token": Key(secret),
        "checks": Key(str_list),
    },
    ci_keys.build,
)
BUGSINK = Table(
    {
        "url": Key(url(_SCHEMES_HTTP), required=True),
        "project": Key(positive_int, required=True),
        "token": Key(secret, required=True),
        "release_format": Key(release_format),
    },
    BugsinkConfig,
)
PROMETHEUS = Table(
    {"url": Key(url(_SCHEMES_HTTP), required=True), "token": Key(secret), "queries": Key(str_table)},
    PrometheusConfig,
)
VERIFY = Table({"window": Key(positive_float), "max_new_issues": Key(count)}, VerifyConfig)
DEPLOY = Table(
    {
        "path": Key(deploy_path, required=True),
        "repo": Key(nonempty_str),  # required unless strategy = "fabric": see _convert_environment
        "branch": Key(nonempty_str),
        "keep_releases": Key(positive_int),
        "shared": Key(shared),
        "build": Key(str_list),
        "restart": Key(restart),
        "migrations": Key(str_list),
        "strategy": Key(one_of("all_at_once", "rolling", "fabric")),
        "batch": Key(positive_int),
        "host_health": Key(url(_SCHEMES_HTTP)),
        "host_health_timeout": Key(positive_float),
        "verify": VERIFY,
        "tasks": Key(fabric_tasks),
        "rollback_tasks": Key(fabric_tasks),
        "fabfile": Key(nonempty_str),
        "fab": Key(nonempty_str),
        "hosts_flag": Key(boolean),
    },
    DeployConfig,
)
FABRIC = Table(
    {
        "fabfile": Key(nonempty_str),
        "fab": Key(nonempty_str),
        "hosts_flag": Key(boolean),
        "timeout": Key(positive_float),
        "expose_tasks": Key(boolean),
    },
    FabricConfig,
)
CACHE = Table({"purge": Key(str_list)}, CacheConfig)
LOGS = Table({"files": Key(str_list)}, LogsConfig)
NGINX = Table(
    {
        "binary": Key(nonempty_str),
        "config": Key(nonempty_str),
        "prefix": Key(nonempty_str),
        "access_log": Key(nonempty_str),
        "error_log": Key(nonempty_str),
        "status_url": Key(url(_SCHEMES_HTTP)),
        "window": Key(nginx_window),
        "log_format": Key(nginx_log_format),
        "upstreams": Key(nginx_upstreams),
        "reload": Key(nonempty_str),
    },
    NginxConfig,
)
SYSTEMD = Table(
    {"units": Key(systemd_units, required=True), "user": Key(boolean), "sudo": Key(boolean)},
    SystemdConfig,
)

ALERTS = Table(
    {
        "url": Key(url(_SCHEMES_HTTP), required=True),
        "matchers": Key(alerts_keys.matchers),
        "token": Key(secret),
        "basic": Key(secret),
        "silence_default": Key(alerts_keys.duration),
        "ack": Key(alerts_keys.duration),
    },
    AlertsConfig,
    either=(("token", "basic"),),
)


def _action_name(value: Any, path: PathKey, problems: Problems) -> str | None:
    text = nonempty_str(value, path, problems)
    if text is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", text):
        problems.add(
            path, f"'{dotted(path)}': action names use lower-case letters, digits, '-' and '_' (got '{text}')"
        )
        return None
    return text


ACTION = Table(
    {
        "name": Key(_action_name, required=True),
        "title": Key(string),
        "command": Key(nonempty_str, required=True),
        "fab": Key(fabric_task),  # a fabfile task instead of a command
        "confirm": Key(boolean),
    },
    CustomAction,
    either=(("command", "fab"),),
)
ENVIRONMENT = Table(
    {
        "hosts": Key(hosts),
        "color": Key(nonempty_str),
        "description": Key(string),
        "protected": Key(boolean),
        "read_only": Key(boolean),
        "health": Key(health_list(_SCHEMES_HTTP)),
        "supervisor": SUPERVISOR,
        "docker": DOCKER,
        "sentry": SENTRY,
        "bugsink": BUGSINK,
        "ci": CI,
        "prometheus": PROMETHEUS,
        "deploy": DEPLOY,
        "cache": CACHE,
        "logs": LOGS,
        "nginx": NGINX,
        "systemd": SYSTEMD,
        "alerts": ALERTS,
        "actions": TableArray(ACTION),
    },
    Environment,
)
PROJECT = Table({"name": Key(nonempty_str), "description": Key(string)}, dict)
DEFAULTS = Table(
    {
        "user": Key(nonempty_str),
        "identity_file": Key(nonempty_str),
        "known_hosts": Key(nonempty_str),
        "timeout": Key(positive_float),
        "refresh": Key(positive_float),
        "max_sessions": Key(positive_int),
        "concurrency": Key(positive_int),
    },
    Defaults,
)


def _convert_table(data: Any, schema: Table, path: PathKey, problems: Problems) -> dict[str, Any] | None:
    if not isinstance(data, dict):
        problems.add(path, f"'{dotted(path)}' must be a table, not {type_name(data)}")
        return None
    out: dict[str, Any] = {}
    ok = True
    for key, value in data.items():
        spec = schema.keys.get(key)
        key_path = (*path, key)
        if spec is None:
            problems.add(key_path, f"unknown key '{dotted(key_path)}'{suggest(key, list(schema.keys))}")
            ok = False
            continue
        if isinstance(spec, Key):
            converted = spec.convert(value, key_path, problems)
        elif isinstance(spec, Table):
            table = _convert_table(value, spec, key_path, problems)
            converted = None if table is None else spec.build(**table)
        else:
            converted = _convert_array(value, spec, key_path, problems)
        if converted is None:
            ok = False
        else:
            out[key] = converted
    for key, alternative in schema.either:
        if key in data and alternative in data:
            problems.add(path, f"'{dotted(path)}' has both '{key}' and '{alternative}': keep one")
            ok = False
    for key, spec in schema.keys.items():
        if spec.required and key not in data and not any(k == key and a in data for k, a in schema.either):
            problems.add(path, f"'{dotted(path)}' is missing the required key '{key}'")
            ok = False
    return out if ok else None


def _convert_array(data: Any, spec: TableArray, path: PathKey, problems: Problems) -> tuple[Any, ...] | None:
    if not isinstance(data, list):
        problems.add(path, f"'{dotted(path)}' must be an array of tables ([[{dotted(path)}]])")
        return None
    items = []
    for index, item in enumerate(data):
        table = _convert_table(item, spec.item, (*path, index), problems)
        if table is not None:
            items.append(spec.item.build(**table))
    return tuple(items) if len(items) == len(data) else None


def _convert_environment(name: str, data: Any, problems: Problems) -> Environment | None:
    path: PathKey = ("environments", name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        problems.add(path, f"environment name '{name}' may hold only letters, digits, '-' and '_'")
        return None
    table = _convert_table(data, ENVIRONMENT, path, problems)
    if table is None:
        return None
    if "sentry" in table and "bugsink" in table:
        problems.add(
            (*path, "bugsink"),
            f"environment '{name}' has both [sentry] and [bugsink]: its Errors pane takes one; remove one",
        )
        return None
    deploy = table.get("deploy")
    if deploy is not None and deploy.verify is not None and not table.get("health") and "sentry" not in table:
        # a verification with nothing to judge would only ever say "verified"
        problems.add(
            (*path, "deploy", "verify"),
            f"[environments.{name}.deploy.verify] has nothing to check: add health URLs "
            f"(environments.{name}.health) or [environments.{name}.sentry] (new issues in the release"
            + ("; the verification does not count Bugsink issues" if "bugsink" in table else "")
            + "), or remove [deploy.verify]",
        )
        return None
    if "ci" in table and not ci_keys.check_ci(table["ci"], (*path, "ci"), problems):
        return None
    if deploy is not None and deploy.strategy == "fabric" and not deploy.tasks:
        problems.add(
            (*path, "deploy"),
            f"[environments.{name}.deploy] has strategy = 'fabric' but no tasks: name the fabfile's "
            'tasks one deploy runs, e.g. tasks = ["production", "deploy"]',
        )
        return None
    if deploy is not None and deploy.strategy != "fabric" and not deploy.repo:
        problems.add((*path, "deploy"), f"'environments.{name}.deploy' is missing the required key 'repo'")
        return None
    seen: set[str] = set()
    for index, action in enumerate(table.get("actions", ())):
        if action.name in seen:
            problems.add((*path, "actions", index, "name"), f"custom action '{action.name}' is defined twice")
            return None
        seen.add(action.name)
    return Environment(name=name, **table)


def _convert_profile(data: dict[str, Any], name: str, source: Path, problems: Problems) -> Profile | None:
    allowed = ["project", "defaults", "environments", "keymap", "fabric"]
    for key in data:
        if key not in allowed:
            problems.add((key,), f"unknown key '{key}'{suggest(key, allowed)}")
    project = _convert_table(data.get("project", {}), PROJECT, ("project",), problems) or {}
    defaults_table = _convert_table(data.get("defaults", {}), DEFAULTS, ("defaults",), problems)
    defaults = Defaults(**defaults_table) if defaults_table is not None else Defaults()
    environments: dict[str, Environment] = {}
    envs = data.get("environments", {})
    if not isinstance(envs, dict):
        problems.add(("environments",), f"'environments' must be a table, not {type_name(envs)}")
    else:
        for env_name, env_data in envs.items():
            env = _convert_environment(env_name, env_data, problems)
            if env is not None:
                environments[env_name] = env
    fabric: FabricConfig | None = None
    if "fabric" in data:
        fabric_table = _convert_table(data["fabric"], FABRIC, ("fabric",), problems)
        fabric = FabricConfig(**fabric_table) if fabric_table is not None else None
    keymap: dict[str, str] = {}
    raw_keymap = data.get("keymap", {})
    if not isinstance(raw_keymap, dict):
        problems.add(("keymap",), f"'keymap' must be a table, not {type_name(raw_keymap)}")
    else:
        # which ids exist is the console's to say (its screens' bindings): see check_keymap
        for binding, keys in raw_keymap.items():
            text = nonempty_str(keys, ("keymap", binding), problems)
            if text is not None:
                keymap[binding] = text
    if problems.items:
        return None
    return Profile(
        name=name,
        path=source,
        project_name=project.get("name", name),
        description=project.get("description"),
        defaults=defaults,
        environments=environments,
        keymap=keymap,
        fabric=fabric,
    )
