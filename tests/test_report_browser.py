"""Render the HTML report in real headless Chromium: no JS errors, tables and images shown, sorting works;
at 1400 px the summary's leading columns fit the window (no horizontal scroll), the rest appear when "show
all columns" is ticked — for one store and for the comparison across two."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from compressbench.report import build_report
from synthetic_store import CLEAN, make_store

pytestmark = pytest.mark.browser

CHROMIUM = next(
    (
        p
        for p in (
            shutil.which("chromium"),
            shutil.which("chromium-browser"),
            shutil.which("google-chrome"),
            "/usr/bin/chromium",
        )
        if p and Path(p).exists()
    ),
    None,
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=5000",
]

# injected into a copy of the page: record JS errors, check images decoded, then sort by clean accuracy
PROBE_HEAD = (
    "<script>window.addEventListener('error',e=>{document.documentElement.dataset.jserr="
    "(e.message||'resource error')},true);</script>"
)
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


# at the window's width: where the leading header cells end, how far the table's box and the page scroll
# sideways, how many of the other columns show before and after ticking "show all columns"
PROBE_LEAD = """<script>window.addEventListener('load',()=>{
  const d=document.body.dataset, t=document.querySelector('table.sortable[data-name=%s]');
  const box=t.closest('.scroll'), heads=[...t.tHead.rows[0].cells];
  const lead=heads.filter(c=>!c.classList.contains('more')), more=heads.filter(c=>c.classList.contains('more'));
  const shown=cs=>cs.filter(c=>c.getBoundingClientRect().width>0).length;
  d.width=String(document.documentElement.clientWidth);
  d.leadright=String(Math.ceil(Math.max(...lead.map(c=>c.getBoundingClientRect().right))));
  d.boxscroll=String(box.scrollWidth-box.clientWidth);
  d.pagescroll=String(document.documentElement.scrollWidth-document.documentElement.clientWidth);
  d.leadlabels=lead.map(c=>c.textContent.replace('?','')).join('|');
  d.nmore=String(more.length); d.moreshown=String(shown(more));
  box.parentNode.querySelector('input.allcols').click();
  d.moreafter=String(shown(more));
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
    dom = r.stdout.replace("<wbr>", "")  # long names may wrap at <wbr> (the text is the same)
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


def _lead_probe(tmp_path: Path, report: Path, table: str) -> dict[str, str]:
    probed = tmp_path / f"lead-{table}.html"
    probed.write_text(report.read_text().replace("</body>", PROBE_LEAD % table + "</body>"))
    dom = _chromium(tmp_path, "--window-size=1400,900", "--dump-dom", probed.as_uri()).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'data-([a-z]+)="([^"]*)"', body))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary installed (apt-get install chromium)")
@pytest.mark.parametrize("table", ["summary", "comparison"])
def test_leading_columns_fit_1400px(report, tmp_path_factory, tmp_path, table):
    if table == "comparison":  # two stores: one report with a table across them
        d = tmp_path_factory.mktemp("two")
        make_store(d / "a.db")
        make_store(d / "b.db", seeds=(0,))
        report = build_report([d / "a.db", d / "b.db"], d / "out", formats=("html",))
    p = _lead_probe(tmp_path, report, table)
    assert int(p["width"]) >= 1380  # the window is 1400 px wide (less a scrollbar)
    labels = p["leadlabels"].split("|")
    for want in ("Clean acc.", "Corruption acc.", "Robust acc.", "Compressed size", "Latency b1 ms"):
        assert any(x.startswith(want) for x in labels), (want, labels)
    assert labels.count("Δ pp") == 3 and labels.count("× parent") == 2
    assert int(p["leadright"]) <= int(p["width"]), p  # every leading header inside the window
    assert int(p["boxscroll"]) <= 0 and int(p["pagescroll"]) <= 0, p  # nothing to scroll sideways
    assert int(p["nmore"]) >= 8 and p["moreshown"] == "0" and p["moreafter"] == p["nmore"], p
