"""YAML read with the line of every key and item, so a problem can name file:line.

The document is composed once (PyYAML's safe subset: no tags that build objects), constructed
into plain data, and walked to map each path (`("rules", 2, "for")`) to the line it starts on.
Duplicate keys, which PyYAML would silently overwrite, are reported.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from rules.language.errors import Problem, RuleFileError

PathKey = tuple[str | int, ...]


@dataclass(slots=True)
class LocatedDocument:
    """Plain data and the line of each path in it."""

    path: Path
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, location: Sequence[str | int]) -> int:
        """The line of `location`, or of its nearest ancestor that has one."""
        key = tuple(location)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), 1)


def read_yaml(path: Path) -> LocatedDocument:
    """Read a YAML file; raise RuleFileError (with its line) when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RuleFileError([Problem(path, 0, f"cannot read the file: {error}")]) from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> LocatedDocument:
    """Parse YAML text that came from `path`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise RuleFileError([Problem(path, line, f"not valid YAML: {error.problem}")]) from None
    except yaml.YAMLError as error:
        raise RuleFileError([Problem(path, 0, f"not valid YAML: {error}")]) from None
    if node is None:
        return LocatedDocument(path, None, {(): 1})
    try:
        data = SafeConstructor().construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else 0
        raise RuleFileError([Problem(path, line, f"not valid YAML: {error.problem}")]) from None
    document = LocatedDocument(path, data)
    problems: list[Problem] = []
    _walk(node, (), document.lines, problems, path)
    if problems:
        raise RuleFileError(problems)
    return document


def _walk(
    node: yaml.Node, at: PathKey, lines: dict[PathKey, int], problems: list[Problem], path: Path
) -> None:
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            if key in seen:
                problems.append(Problem(path, key_node.start_mark.line + 1, f"{key!r} is repeated"))
            seen.add(key)
            lines[(*at, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*at, key), lines, problems, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*at, index), lines, problems, path)
