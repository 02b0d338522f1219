"""The shipped study presets: YAML files in ``study/presets/``, each opening with a
comment line that says what it runs (``betastudy presets`` lists them)."""

from __future__ import annotations

from importlib import resources

DEFAULT = "quick"  # what `betastudy run` runs without a spec


def names() -> list[str]:
    folder = resources.files("study") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def text(name: str) -> str:
    return (resources.files("study") / "presets" / f"{name}.yaml").read_text()


def summary(name: str) -> str:
    """The first comment line of a preset: its one-line description."""
    for line in text(name).splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
