"""Imports go one way: the application on top, the domains beneath it, shared parts below them,
`models` at the bottom (issue 14):

    luxtel  (the app: CLI, settings, composition, `luxtel up`, the live view)
      ↓
    ingest · rules · energy · simulator · dashboards   (domains: none imports another)
      ↓
    mqtt · influx · common   (shared parts: the MQTT client, the InfluxDB client, backoff and
                              logging set-up; none imports another)
      ↓
    models  (the data luxtel speaks, the one inventory parser included)

Every import in every module of these packages, function-local and TYPE_CHECKING ones too, is
read with `ast` and mapped to its top-level package: an import of a higher layer (a back
arrow) or of another package of the same layer (sideways) is a violation. The ALLOWLIST holds
the violations the code has today, each as "module -> imported module"; it must be exact — a
new violation fails, and so does an entry that no longer occurs, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS: dict[str, int] = {
    "luxtel": 3,
    "ingest": 2,
    "rules": 2,
    "energy": 2,
    "simulator": 2,
    "dashboards": 2,
    "mqtt": 1,
    "influx": 1,
    "common": 1,
    "models": 0,
}

ALLOWLIST: frozenset[str] = frozenset()
"""Violations tolerated for a while, each as "module -> imported module" (none today; one added
here must name the issue that removes it)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the layered packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ours that module `name` imports (a `from X import y` of a submodule
    `X.y` counts as `X.y`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
    return {m for m in out if m.split(".")[0] in LAYERS}


def violations() -> set[str]:
    known = modules()
    found: set[str] = set()
    for name, path in known.items():
        own = name.split(".")[0]
        for target in imported(name, path, known):
            other = target.split(".")[0]
            if other != own and LAYERS[other] >= LAYERS[own]:
                found.add(f"{name} -> {target}")
    return found


def test_imports_follow_the_layers() -> None:
    found = violations()
    new = sorted(found - ALLOWLIST)
    gone = sorted(ALLOWLIST - found)
    assert not new, "imports against the layers (a back arrow or sideways):\n" + "\n".join(new)
    assert not gone, "fixed, so take them out of ALLOWLIST:\n" + "\n".join(gone)


NOT_INSTALLED = ("servers", "tests", "bench", "fuzz")
"""Found from the repository root only: an installed module that imports them fails."""


def test_no_installed_module_imports_the_test_harness() -> None:
    found = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            found += [f"{name} -> {n}" for n in names if n.split(".")[0] in NOT_INSTALLED]
    assert found == []


def test_the_walker_sees_a_back_arrow_and_a_sideways_import(tmp_path: Path) -> None:
    """The walker itself, on modules written for the purpose."""
    known = {"rules.a": tmp_path / "a.py", "energy.b": tmp_path / "b.py"}
    known["rules.a"].write_text(
        "import models\nfrom luxtel.settings import Settings\ndef f():\n    from energy import b\n"
    )
    assert imported("rules.a", known["rules.a"], known) == {"models", "luxtel.settings", "energy.b"}
