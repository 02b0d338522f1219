"""Write the trial-config table of docs/config.md from trainables/config.py.

    python docs/make_config_table.py           # rewrite the table in docs/config.md
    python docs/make_config_table.py --check   # exit 1 if the page's table is out of date

Each row is one field of ``TrialConfig``: its name, its default as the code writes it,
and the docstring on the line after it (whitespace folded to single spaces; ``|``
escaped for the table). tests/test_readme.py holds the page to the code.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "trainables" / "config.py"
PAGE = ROOT / "docs" / "config.md"
BEGIN = "<!-- trial-config-table: begin (python docs/make_config_table.py) -->"
END = "<!-- trial-config-table: end -->"


def trial_fields(source: str) -> list[tuple[str, str, str]]:
    """(name, default as written, docstring) of every annotated field of TrialConfig."""
    (cls,) = [
        n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "TrialConfig"
    ]
    out = []
    for node, after in zip(cls.body, [*cls.body[1:], None]):
        if not isinstance(node, ast.AnnAssign):
            continue
        name = node.target.id
        default = ast.get_source_segment(source, node.value)
        doc = after.value.value if isinstance(after, ast.Expr) else None
        if not isinstance(doc, str):
            raise SystemExit(f"trainables/config.py: field {name} has no docstring")
        out.append((name, default, " ".join(doc.split())))
    return out


def table(fields: list[tuple[str, str, str]]) -> str:
    rows = [f"| `{n}` | `{d}` | {doc.replace('|', chr(92) + '|')} |" for n, d, doc in fields]
    return "\n".join(["| field | default | meaning |", "| --- | --- | --- |", *rows])


def rewritten(page: str, source: str) -> str:
    head, rest = page.split(BEGIN + "\n")
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{table(trial_fields(source))}\n{END}{tail}"


def main(argv: list[str]) -> int:
    page, source = PAGE.read_text(), SOURCE.read_text()
    new = rewritten(page, source)
    if "--check" in argv:
        if new != page:
            print("docs/config.md: the trial-config table is out of date", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
