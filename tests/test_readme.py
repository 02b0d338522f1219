"""The README's test command is the one CI runs, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    (command,) = re.findall(r"^python -m pip install .* && python -m pytest.*$", readme, re.M)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == command  # CI's last line, run as the README gives it


def test_every_betastudy_command_the_readme_names_exists():
    from study.cli import main

    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`betastudy ([a-z]+)", readme))
    assert named and named <= set(main.commands), named - set(main.commands)
