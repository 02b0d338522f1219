"""The README's test command is the one CI runs, its commands exist, and the docs pages
hold to the code: every command they name, every relative link, the trial-config table."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    (command,) = re.findall(r"^python -m pip install .* && python -m pytest.*$", readme, re.M)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == command  # CI's last line, run as the README gives it


def test_every_betastudy_command_the_readme_and_the_docs_name_exists():
    from study.cli import main

    for page in PAGES:
        named = set(re.findall(r"`betastudy ([a-z]+)", page.read_text()))
        missing = named - set(main.commands)
        assert not missing, (page.relative_to(ROOT).as_posix(), missing)
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"`betastudy ([a-z]+)", readme)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces -."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    heads = re.findall(r"^#+ (.*)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            where = (page.relative_to(ROOT).as_posix(), target)
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            assert path.exists(), where
            if anchor:
                assert anchor in _anchors(path), where


def _trial_fields_from_the_code() -> list[tuple[str, str, str]]:
    """(name, default as written, docstring with whitespace folded) of TrialConfig's
    fields, read from trainables/config.py's source, checked against the dataclass."""
    from trainables.config import TrialConfig

    source = (ROOT / "trainables" / "config.py").read_text()
    (cls,) = [n for n in ast.walk(ast.parse(source)) if getattr(n, "name", "") == "TrialConfig"]
    body = cls.body
    fields = []
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign):
            doc = body[i + 1] if i + 1 < len(body) else None
            text = getattr(getattr(doc, "value", None), "value", None)
            assert isinstance(doc, ast.Expr) and isinstance(text, str), node.target.id
            default = ast.get_source_segment(source, node.value)
            fields.append((node.target.id, default, " ".join(text.split())))
    real = dataclasses.fields(TrialConfig)
    assert [f[0] for f in fields] == [f.name for f in real]
    assert [ast.literal_eval(f[1]) for f in fields] == [f.default for f in real]
    return fields


def test_the_config_page_lists_every_trial_field_with_its_docstring():
    page = (ROOT / "docs" / "config.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `([^`]*)` \| (.*) \|$", page, re.M)
    listed = [(name, default, doc.replace("\\|", "|")) for name, default, doc in rows]
    assert listed == _trial_fields_from_the_code()  # python docs/make_config_table.py


def test_the_config_table_generator_reproduces_the_page():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make", ROOT / "docs" / "make_config_table.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    assert make.trial_fields(make.SOURCE.read_text()) == _trial_fields_from_the_code()
    assert make.main(["--check"]) == 0


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
