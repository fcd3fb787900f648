"""A commented `luxtel.toml` generated from the settings' own declarations.

Each key comes with its `Field(description=…)`, its allowed values, the environment variable that
overrides it, and its default. Keys without a default and every secret are written commented out:
secrets belong in the environment or in files, never in a configuration file that may be copied
around. `deploy/luxtel.example.toml` is this function's output (a test keeps them equal):

    python -c "from luxtel.config_example import example_toml; print(example_toml(), end='')" \\
        > deploy/luxtel.example.toml
"""

from __future__ import annotations

import json
import textwrap
from enum import Enum
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from luxtel.settings import ENV_PREFIX, Settings

HEADER = """\
# luxtel configuration: every key, with its default. Generated from luxtel/settings.py by
# luxtel.config_example.example_toml(); do not edit by hand.
#
# Every key can be overridden from the environment as LUXTEL_<SECTION>__<KEY> (shown for each).
# Secrets (passwords, tokens) are commented out on purpose: give them in the environment or in
# the *_file keys, never in this file or the repository.
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Enum):
        value = value.value
    return json.dumps(str(value))  # a TOML basic string: JSON escapes are valid TOML escapes


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _choices(annotation: Any) -> str | None:
    for candidate in (annotation, *get_args(annotation)):
        if get_origin(candidate) is Literal:
            return ", ".join(_toml_value(choice) for choice in get_args(candidate))
    return None


def _placeholder(name: str, annotation: Any) -> str:
    if _is_secret(annotation):
        return '"…"'
    if Path in get_args(annotation) or annotation is Path:
        return json.dumps(f"/etc/luxtel/{name.removesuffix('_file').replace('_', '-')}")
    return '""'


def _key_lines(name: str, info: FieldInfo, env: str) -> list[str]:
    lines = []
    if info.description:
        lines += textwrap.wrap(info.description, 98, initial_indent="# ", subsequent_indent="# ")
    choices = _choices(info.annotation)
    notes = [f"env {env}"]
    if choices:
        notes.insert(0, f"one of {choices}")
    if _is_secret(info.annotation):
        notes.append("a secret: better from the environment or a file")
    lines.append(f"# ({'; '.join(notes)})")
    if info.default is None or _is_secret(info.annotation):
        lines.append(f"# {name} = {_placeholder(name, info.annotation)}")
    else:
        lines.append(f"{name} = {_toml_value(info.default)}")
    return lines


def _section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def example_toml() -> str:
    """The example configuration, every key of `Settings` documented."""
    out = [HEADER.rstrip()]
    fields = Settings.model_fields
    for name, info in fields.items():
        if not _section(info.annotation):
            out.append("\n".join(_key_lines(name, info, ENV_PREFIX + name.upper())))
    for name, info in fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        body = [f"[{name}]"]
        doc = model.__doc__
        if doc and doc != BaseModel.__doc__:
            body.insert(0, f"# {doc.strip().splitlines()[0]}")
        for key, key_info in model.model_fields.items():
            env = f"{ENV_PREFIX}{name.upper()}__{key.upper()}"
            body.append("\n".join(_key_lines(key, key_info, env)))
        out.append("\n\n".join(body))
    return "\n\n".join(out) + "\n"
