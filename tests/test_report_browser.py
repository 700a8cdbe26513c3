"""Render the HTML report in real headless Chromium: no JS errors, tables and images shown, sorting works."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from compressbench.report import build_report
from synthetic_store import CLEAN, make_store

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome"), "/usr/bin/chromium") if p and Path(p).exists()), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--virtual-time-budget=5000"]

# injected into a copy of the page: record JS errors, check images decoded, then sort by clean accuracy
PROBE_HEAD = ("<script>window.addEventListener('error',e=>{document.documentElement.dataset.jserr="
              "(e.message||'resource error')},true);</script>")
PROBE_BODY = """<script>window.addEventListener('load',()=>{
  const imgs=[...document.images];
  document.body.dataset.imgs=String(imgs.length);
  document.body.dataset.imgsok=String(imgs.filter(i=>i.complete&&i.naturalWidth>0).length);
  const t=document.querySelector('table.sortable[data-name=summary]');
  const th=[...t.tHead.rows[0].cells].find(c=>c.textContent.startsWith('Clean acc'));
  th.click(); th.click();  // descending
  document.body.dataset.first=t.tBodies[0].rows[0].cells[0].textContent;
  document.body.dataset.last=t.tBodies[0].rows[t.tBodies[0].rows.length-1].cells[0].textContent;
});</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser")
    make_store(d / "s.db", artifacts_dir=d / "art")
    return build_report(d / "s.db", d / "out", formats=("html",))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary installed (apt-get install chromium)")
def test_report_renders_in_chromium(report, tmp_path):
    # 1. the unmodified page: console must have no uncaught JS error
    r = _chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", report.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    console = [ln for ln in r.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not [ln for ln in console if re.search(r"Uncaught|Error", ln)], console
    dom = r.stdout
    assert 'data-ready="1"' in dom  # the page's own script ran
    assert dom.count('<table class="sortable"') >= 4
    for v in CLEAN:
        assert v in dom
    # 2. a probed copy: images decoded, sorting works, no error event
    probed = tmp_path / "probed.html"
    text = report.read_text()
    probed.write_text(text.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_BODY + "</body>"))
    dom = _chromium(tmp_path, "--dump-dom", probed.as_uri()).stdout
    assert "data-jserr" not in dom
    n = int(re.search(r'data-imgs="(\d+)"', dom).group(1))
    ok = int(re.search(r'data-imgsok="(\d+)"', dom).group(1))
    assert n >= 12 and ok == n  # every figure + gallery + disagreement grid decoded
    assert 'data-first="baseline"' in dom  # highest clean accuracy first after a descending sort
    assert 'data-last="prune.unstructured@params=0.25"' in dom


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary installed (apt-get install chromium)")
def test_screenshot(report, tmp_path):
    shot = tmp_path / "shot.png"
    r = _chromium(tmp_path, "--window-size=1280,900", f"--screenshot={shot}", report.as_uri())
    assert r.returncode == 0 and shot.stat().st_size > 10_000
