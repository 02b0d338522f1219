"""The report opened in a real headless Chromium: no JavaScript errors, every figure drawn,
and not one network request (the page must work offline)."""

from __future__ import annotations

import shutil

import pytest

from analysis import load_study
from analysis.activation import activation_summary_data
from analysis.report import build_report
from analysis.synthetic import write_synthetic_study

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def console_problem(message) -> bool:
    """An error or warning from the page: plotly.js warns through console.trace ("WARN:
    Invalid color specifier"). Chromium's own notes about its software GL renderer
    ("GL Driver Message ... GPU stall") come from the browser, not the report."""
    if "GL Driver Message" in message.text:
        return False
    return message.type in ("error", "warning", "assert") or "WARN" in message.text


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    study = write_synthetic_study(root, 14, steps=3000, report_every=100, eval_every=1000, seeds=2)
    return build_report(study, root / "report.html")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")
def test_report_in_headless_chromium(report, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    blocked: list[str] = []

    def route(r):
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:  # any fetch from the network fails the test: the report must be offline
            blocked.append(r.request.url)
            r.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on(
                "console",
                lambda m: (
                    errors.append(f"console {m.type}: {m.text}") if console_problem(m) else None
                ),
            )
            page.route("**/*", route)
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function(
                "Array.from(document.querySelectorAll('.plotly-graph-div'))"
                ".every(d => d.querySelector('.main-svg'))",
                timeout=30_000,
            )
            figures = page.evaluate(
                """Array.from(document.querySelectorAll('.plotly-graph-div')).map(d => [
                    d.id,
                    d.querySelectorAll('.main-svg').length,
                    d.querySelectorAll('g.trace, g.cartesianlayer image, .parcoords').length,
                ])"""
            )
            images = page.evaluate(
                """Array.from(document.querySelectorAll('[id^=fig-traversals] image'))
                    .map(i => (i.getAttribute('href') || i.getAttribute('xlink:href') || '')
                    .slice(0, 22))"""
            )
            # the traversal animation: its frames, and a frame's own row labels once shown
            frames = page.evaluate(
                "document.getElementById('fig-traversal-frames-0')._transitionData._frames"
                ".map(f => f.name)"
            )
            first_labels = _tick_labels(page, "fig-traversal-frames-0")
            page.evaluate(
                """([id, name]) => Plotly.animate(id, [name], {mode: 'immediate',
                    frame: {duration: 0, redraw: true}, transition: {duration: 0}})""",
                ["fig-traversal-frames-0", frames[-1]],
            )
            page.wait_for_timeout(300)
            last_labels = _tick_labels(page, "fig-traversal-frames-0")
            failed_rows = page.locator("#failed table tr").count()
            warnings = page.locator(".warn", has_text="learned nothing").count()
            lead = page.locator("#summary p.lead").inner_text()
            pair_rows = page.locator("#activation table").first.locator("tr").count()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert blocked == []
    ids = [f[0] for f in figures]
    for fig in (
        "fig-frontier",
        "fig-grid",
        "fig-activation-summary",
        "fig-activation-0",
        "fig-traversals-0",
        "fig-traversal-frames-0",
        "fig-curves",
        "fig-parallel",
        "fig-importance",
    ):
        assert fig in ids
    assert all(svgs >= 1 and drawn >= 1 for _, svgs, drawn in figures), figures
    assert images and all(src == "data:image/png;base64," for src in images)
    assert frames == ["1000", "2000", "3000"]  # one frame per evaluation
    assert first_labels[2].startswith("z0 ") and "KL=1.33 nats" in first_labels[2]
    assert last_labels[2].startswith("z0 ") and "KL=4.00 nats" in last_labels[2]
    assert failed_rows == 1 + 3  # header + the failed, running and pending trials
    assert warnings == 0  # the synthetic trials learned
    assert "predicting the mean image costs 565.3 nats" in lead
    assert "Position before scale:" in lead
    configurations = len(activation_summary_data(load_study(_study_of(report))).configurations)
    assert configurations > 1  # seeds pooled per configuration, configurations not
    assert pair_rows == 1 + 6 * configurations  # header + six pairs of groups a configuration
    assert (tmp_path / "report.png").stat().st_size > 10_000


def _study_of(report):
    """The study folder beside the report (the fixture writes both under one root)."""
    return next(report.parent.glob("*/study.yaml")).parent


def _tick_labels(page, div_id: str) -> list[str]:
    """The y-axis tick labels of a figure, top to bottom, as drawn."""
    return page.evaluate(
        f"Array.from(document.querySelectorAll('#{div_id} .ytick text')).map(t => t.textContent)"
    )
