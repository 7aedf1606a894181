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


def saved_logs_dir() -> Path:
    """Where the log viewer proposes to save (never the current folder: in a checkout that would be
    an untracked file)."""
    return data_dir() / "saved-logs"


def audit_log_path() -> Path:
    override = os.environ.get("OPSCONSOLE_AUDIT_LOG")
    return Path(override) if override else data_dir() / "audit.jsonl"
