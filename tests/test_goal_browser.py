"""The report's decision section in real headless Chromium: first on the page (before the findings and the
experiment's tables), the recommendation with its gain, every rejected candidate with what it broke, the
noisy timing left out, the Pareto figure decoded, no JS error; a screenshot goes to docs/goal-decision.png."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from compressbench.report import build_report
from test_goal_decision import _store
from test_report_browser import CHROMIUM, PROBE_HEAD, _chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary installed (apt-get install chromium)"),
]

PROBE = """<script>window.addEventListener('load',()=>{
  const d=document.body.dataset, sec=[...document.querySelectorAll('section')];
  d.first=sec.length?sec[0].id:''; d.nsec=String(sec.length);
  const imgs=[...document.querySelectorAll('#decision img')];
  d.imgs=String(imgs.length); d.imgsok=String(imgs.filter(i=>i.complete&&i.naturalWidth>0).length);
  d.rows=String(document.querySelectorAll('#decision table.decision-candidates tbody tr').length);
});</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("goalbrowser")
    clean = {
        "baseline": [0.90, 0.901, 0.899],
        "prune@params=0.7": [0.899, 0.898, 0.899],
        "prune@params=0.4": [0.894, 0.893, 0.895],
        "prune@params=0.1": [0.70, 0.72, 0.69],
        "int8": [0.899, 0.9, 0.898],
    }
    lat = {"baseline": 2.0, "prune@params=0.7": 1.5, "prune@params=0.4": 1.0, "prune@params=0.1": 0.4, "int8": 0.8}
    path = _store(
        d, clean, lat, noise={"int8": (0.5, 0.9)}, budgets={f"prune@params={x}": ("params", x) for x in (0.7, 0.4, 0.1)}
    )
    return build_report(path, d / "out", formats=("html",))


def test_decision_section_renders_first_in_chromium(report, tmp_path):
    html = report.read_text()
    probe = report.with_name("probe.html")
    probe.write_text(html.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE + "</body>", 1))
    r = _chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    assert "data-jserr" not in dom
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', dom[dom.index("<body") : dom.index(">", dom.index("<body"))]))
    assert attrs["first"] == "decision", attrs
    assert int(attrs["imgs"]) >= 1 and attrs["imgsok"] == attrs["imgs"]
    assert attrs["rows"] == "4"  # every candidate: 2 meet, the noisy int8, the broken 0.1
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "Recommended: prune@params=0.4" in text  # int8 is faster but its timing is noisy: left out
    assert "2.00× faster" in text and "bound 0.94 pts ≤ 1 pt" in text
    assert "Left out (noisy timing" in text and "int8" in text
    assert "rejected" in text and "prune@params=0.1" in text


def test_decision_screenshot(report, tmp_path):
    shot = tmp_path / "shot.png"
    r = _chromium(tmp_path, "--window-size=1280,1000", f"--screenshot={shot}", report.as_uri())
    assert r.returncode == 0 and shot.is_file() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    shutil.copy(shot, Path(__file__).resolve().parents[1] / "docs" / "goal-decision.png")
