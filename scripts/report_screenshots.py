"""Remake the report images in docs/: the summary of the synthetic test store as headless Chromium shows it
in a 1400 px window (docs/report-screenshot.png; the numbers are made up, see tests/synthetic_store.py),
the comparison across two stores (docs/report-comparison.png), and, given their stores, the quickstart's
report at 1400 px (docs/quickstart-report.png) and the accuracy-vs-pruning-fraction figure of a
smoke-scale run of the trade-offs preset (docs/tradeoffs-acc-vs-knob.png).

    PYTHONPATH=src python scripts/report_screenshots.py [--quickstart STORE] [--tradeoffs STORE] [--out docs]

The trade-offs store comes from
``compressbench run configs/studies/cifar10_pretrained_tradeoffs.yaml --scale smoke``.
Needs chromium (scripts/ensure_browser.sh).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from compressbench.report import build_report  # noqa: E402
from synthetic_store import make_store  # noqa: E402


def shot(page: Path, png: Path, size: str = "1400,1000") -> None:
    browser = next(p for p in ("chromium", "chromium-browser", "google-chrome") if shutil.which(p))
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={size}", f"--screenshot={png}",
                        page.as_uri()], check=True, capture_output=True, timeout=120)
    print(f"wrote {png}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument("--quickstart", help="store of a quickstart run (results/quickstart.sqlite)")
    ap.add_argument("--tradeoffs", help="store of a smoke-scale run of the trade-offs preset")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        here = os.getcwd()
        os.chdir(tmp)  # the page names the stores as given: short relative names
        try:
            make_store("synthetic.db", artifacts_dir=tmp / "art")
            shot(build_report("synthetic.db", tmp / "one", formats=("html",)), out / "report-screenshot.png")
            make_store("one-seed.db", seeds=(0,))
            two = build_report(["synthetic.db", "one-seed.db"], tmp / "two", formats=("html",))
            shot(two, out / "report-comparison.png", "1400,900")
        finally:
            os.chdir(here)
        if args.quickstart:
            page = build_report(args.quickstart, tmp / "quickstart", formats=("html",))
            shot(page, out / "quickstart-report.png", "1400,1200")
        if args.tradeoffs:
            build_report(args.tradeoffs, tmp / "study", formats=("png",))
            fig = next((tmp / "study").glob("*/figures/acc_vs_budget_knob.png"))
            shutil.copyfile(fig, out / "tradeoffs-acc-vs-knob.png")
            print(f"wrote {out / 'tradeoffs-acc-vs-knob.png'}")


if __name__ == "__main__":
    main()
