"""The container image's build, short of a Docker engine (none runs here): the Dockerfile's
build stage gets every package and a C compiler, and a wheel built from exactly what it copies
installs a luxtel whose CLI and C modules import."""

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def build_stage() -> str:
    """The Dockerfile from its first FROM up to the next."""
    return DOCKERFILE.read_text().split("\nFROM ")[1]


def build_stage_copies() -> list[str]:
    """What the build stage copies from the context."""
    copied: list[str] = []
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", build_stage(), flags=re.MULTILINE):
        copied += sources.split()
    return copied


def test_the_build_stage_has_every_package_and_a_compiler() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= set(build_stage_copies())
    assert project["tool"]["setuptools"]["ext-modules"], "C modules: a compiler is needed"
    assert re.search(r"apt-get install .*\bgcc\b", build_stage())
    assert "COPY --from=build /wheels" in DOCKERFILE.read_text()


@pytest.mark.timeout(600)
def test_a_wheel_of_what_the_image_copies_runs_luxtel(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for name in build_stage_copies():
        source = ROOT / name
        if source.is_dir():
            subprocess.run(
                ["cp", "-r", str(source), str(context / name)], check=True, capture_output=True
            )
        else:
            (context / name).write_bytes(source.read_bytes())
    for stale in context.rglob("*.so"):  # as .dockerignore leaves them out
        stale.unlink()
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), "."],
        cwd=context,
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("luxtel-*.whl")
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert "servers" not in top_level, "the test harness is not installed"
    assert "tests" not in top_level
    installed = tmp_path / "installed"
    zipfile.ZipFile(wheel).extractall(installed)
    site_packages = next(Path(sys.executable).parent.parent.glob("lib/python3*/site-packages"))
    # -S: no .pth files, so the editable install of this checkout cannot stand in for the wheel.
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import mqtt.publish_frames, ingest.reading_lines, luxtel.cli, luxtel.up\n"
            "assert ingest.reading_lines.__file__.startswith(__import__('sys').argv[1])\n"
            "luxtel.cli.app(['--help'], standalone_mode=False)",
            str(installed),
        ],
        env={"PYTHONPATH": f"{installed}:{site_packages}", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "run" in done.stdout
