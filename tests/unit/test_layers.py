"""The layers contract (``[tool.importlinter]`` in pyproject.toml) holds, and
it can fail: a copy of the package with one forbidden import is refused.

`lint-imports` runs in a subprocess on the tree it is pointed at (its
working directory and PYTHONPATH), so the copy is checked, never the
installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_tree_keeps_the_layers_contract() -> None:
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        # the domain reaching up into a transport
        ("presence/services/work.py", "import presence.http.common", "presence.services is not allowed"),
        # the two transports talking to each other, not through Redis
        ("presence/http/health.py", "import presence.ws.hub", "presence.http is not allowed"),
        # the store reaching up into the router
        ("presence/store/keys.py", "import presence.router.dispatcher", "presence.store is not allowed"),
        # a cycle inside one layer: the hub importing a role that imports the hub
        ("presence/ws/hub.py", "import presence.ws.agent", "No cycles are allowed in presence.ws"),
        # a new module in no layer at all
        ("presence/extra.py", "", "presence.extra"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(
    tmp_path: Path, module: str, line: str, expected: str
) -> None:
    shutil.copytree(
        ROOT / "presence", tmp_path / "presence", ignore=shutil.ignore_patterns("static", "__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    with target.open("a", encoding="utf-8") as f:
        f.write(f"\n{line}\n")
    run = _lint(tmp_path)
    assert run.returncode != 0, run.stdout
    assert "BROKEN" in run.stdout and expected in run.stdout, run.stdout
