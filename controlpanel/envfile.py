"""The `.env` reader shared by the settings and `make run` (no Django import here)."""

from __future__ import annotations

import os
from pathlib import Path


class EnvFileError(ValueError):
    pass


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped; one pair of quotes stripped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise EnvFileError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_env_file(path: Path) -> None:
    """Put a `.env` file's values into os.environ, never overriding what is already set."""
    if path.is_file():
        for key, value in read_env_file(path).items():
            os.environ.setdefault(key, value)
