"""Where opsconsole keeps its files (platformdirs), overridable for tests."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "opsconsole"


def config_dir() -> Path:
    override = os.environ.get("OPSCONSOLE_CONFIG_DIR")
    return Path(override) if override else platformdirs.user_config_path(APP)


def data_dir() -> Path:
    override = os.environ.get("OPSCONSOLE_DATA_DIR")
    return Path(override) if override else platformdirs.user_data_path(APP)


def audit_log_path() -> Path:
    override = os.environ.get("OPSCONSOLE_AUDIT_LOG")
    return Path(override) if override else data_dir() / "audit.jsonl"
