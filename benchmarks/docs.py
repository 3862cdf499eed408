"""Regenerate the README's benchmark numbers from benchmarks/results/*.json (the docs quote nothing by hand).

Reproduce: python benchmarks/docs.py            (rewrites each generated block of README.md in place)
           python benchmarks/docs.py --check    (exit 1 when a block differs from its JSON; the tests run this)
A generated block lies between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _deg(x: float) -> str:
    return f"{x:.2f}°" if x < 10 else f"{x:.1f}°"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def demo_block(result: dict) -> str:
    """The demo's numbers (``benchmarks/results/demo.json``) as the README's table."""
    b, a, m = result["before_refinement"], result["after_refinement"], result["meta"]
    t = result["stage_times_s"]
    rows = [
        ("recovered orientations (before refinement)", b.get("err_o4_median"), b.get("err_rot_median"),
         b.get("acc10"), b.get("acc20")),
        ("after projection-matching refinement", a["err_o4_median"], a["err_rot_median"], a["acc10"], a["acc20"]),
    ]  # fmt: skip
    lines = [
        f"Measured by `python benchmarks/demo.py` (commit {m['commit'][:10]}, {m['date'][:10]}, {m['machine']}, "
        f"{m['cpu_count']} cores): `orirec demo` on the embedded pseudo-protein, 1,000 of 5,000 images recovered, "
        f"distance MAE {a['dist_mae']:.3f} rad, run time {result['total_time_s'] / 60:.1f} min "
        f"(training {t.get('train', 0):.0f} s, recovery and refinement {t.get('recover', 0):.0f} s).",
        "",
        "| orientations | `err_o4` median | `err_rot` median | acc@10° | acc@20° |",
        "|---|---|---|---|---|",
        *(f"| {name} | {_deg(o4)} | {_deg(rot)} | {_pct(a10)} | {_pct(a20)} |" for name, o4, rot, a10, a20 in rows
          if o4 is not None),
    ]  # fmt: skip
    return "\n".join(lines)


BLOCKS = {"demo": ("demo.json", demo_block)}


def render(readme: str) -> str:
    """``readme`` with every generated block replaced by its rendering from the JSON results."""
    for name, (file, fn) in BLOCKS.items():
        result = json.loads((RESULTS / file).read_text())
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end generated: {name} -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"README.md: no generated block '{name}'")
        text = fn(result) + "\n"
        readme = pattern.sub(lambda mt, text=text: mt.group(1) + text + mt.group(2), readme)
    return readme


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    a = p.parse_args()
    path = ROOT / "README.md"
    old = path.read_text()
    new = render(old)
    if a.check:
        if new != old:
            print("README.md: generated numbers differ from benchmarks/results; run python benchmarks/docs.py")
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
