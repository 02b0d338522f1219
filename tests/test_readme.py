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


def test_help_and_presets_load_no_torch_ray_or_plotly():
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from study.cli import main; "
        "r = [CliRunner().invoke(main, a) for a in (['--help'], ['presets'], ['run', '-h'])]; "
        "assert all(x.exit_code == 0 for x in r), [x.output for x in r]; "
        "print(*[m in sys.modules for m in ('torch', 'ray', 'plotly')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "False"]  # fast to start: measured 0.2 s
