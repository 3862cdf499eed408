"""Render every benchmark number of the docs from benchmarks/results/*.json: README.md and docs/ type none by hand.

Reproduce: python benchmarks/docs.py            (rewrites each generated block of README.md and docs/**/*.md)
           python benchmarks/docs.py --check    (exit 1 when a block differs from its JSON; the tests run this)
A generated block lies between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->``; NAME is a key
of ``BLOCKS``. The docs site renders the same blocks again at build time (``docs/hooks/generate.py``), so the
site always shows the JSONs as they are; ``--check`` keeps the sources (what GitHub shows) in step with them.
Every table says where its numbers come from: the benchmark's command, and the commit, date and machine of its
JSON's ``meta`` (``benchmarks/_meta.py``), or "not recorded" for a JSON written before that existed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_BLOCKS = ("demo", "headline")  # the README must hold these
BLOCK = re.compile(r"<!-- generated: ([\w-]+) -->\n(.*?)<!-- end generated: \1 -->", re.S)
NOT_RECORDED = "not recorded"


def load(stem: str) -> dict:
    """``benchmarks/results/STEM.json``."""
    return json.loads((RESULTS / f"{stem}.json").read_text())


# ---------------------------------------------------------------------------------------------------- formatting


def _deg(x: float) -> str:
    return f"{x:.2f}°" if x < 10 else f"{x:.1f}°"


def _deg_fine(x: float) -> str:
    """Degrees down to exact fits (1e-11°)."""
    if x >= 10:
        return f"{x:.1f}°"
    if x >= 0.1:
        return f"{x:.2f}°"
    if x >= 0.001:
        return f"{x:.3f}°"
    return "< 0.001°"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _pct_err(x: float) -> str:
    return f"{100 * x:.2f} %"


def _s(x: float) -> str:
    return f"{x:,.0f} s" if x >= 100 else f"{x:.1f} s"


def _int(x: int) -> str:
    return f"{x:,}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
    ]


# ---------------------------------------------------------------------------------------------------- provenance


def provenance(result: dict) -> dict[str, str]:
    """Commit, date, machine, cores, torch and GPU of a result, from its ``meta`` (or older top-level keys)."""
    meta = result.get("meta") or {}
    machine = meta.get("machine") or result.get("machine")
    cores = meta.get("cpu_count") or meta.get("cpus")
    torch = meta.get("torch")
    if isinstance(machine, dict):  # train_throughput.json: {"platform", "cpus", "torch"}
        cores, torch, machine = machine.get("cpus"), machine.get("torch"), machine.get("platform")
    commit = meta.get("commit") or ""
    date = str(meta.get("date") or "")
    return {
        "commit": f"`{commit[:10]}`" + (" (uncommitted changes)" if commit.endswith("+dirty") else "")
        if commit
        else NOT_RECORDED,
        "date": date[:10] if date else NOT_RECORDED,
        "machine": str(machine) if machine else NOT_RECORDED,
        "cores": str(cores) if cores else NOT_RECORDED,
        "torch": str(torch) if torch else NOT_RECORDED,
        "gpu": str(meta["gpu"]) if meta.get("gpu") else ("none" if "gpu" in meta else NOT_RECORDED),
    }


def provenance_lines(stem: str, command: str | None = None) -> list[str]:
    """Where a page's numbers come from: the command, the JSON and its commit, date and machine."""
    p = provenance(load(stem))
    command, _, aside = (command or f"python benchmarks/{stem}.py").partition("(")
    aside = f" ({aside.strip()}" if aside else ""
    lines = [
        f"Measured by `{command.strip()}`{aside}; numbers from `benchmarks/results/{stem}.json`: "
        f"commit {p['commit']}, date {p['date']}, machine {p['machine']}, cores {p['cores']}, torch {p['torch']}, "
        f"GPU {p['gpu']}."
    ]
    if NOT_RECORDED in (p["commit"], p["date"]):
        lines += [
            "",
            "This JSON was written before the benchmarks recorded their commit and date (`benchmarks/_meta.py`); "
            "running the benchmark again records them.",
        ]
    return lines


# ---------------------------------------------------------------------------------------------------- blocks


class Where:
    """The file a block is rendered into, for links relative to it."""

    def __init__(self, path: Path) -> None:
        self.dir = path.resolve().parent

    def link(self, target: str) -> str:
        """``target`` (relative to the repository root) relative to the file."""
        return Path(os.path.relpath(ROOT / target, self.dir)).as_posix()


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


def _demo(where: Where) -> str:
    return demo_block(load("demo"))


def _demo_details(where: Where) -> str:
    r = load("demo")
    c, a = r["config"], r["after_refinement"]
    sim, train, rec = c["simulate"], c["train"], c["recover"]
    setup = [
        ["structure", ", ".join(f"`{s}`" for s in sim["inputs"])],
        ["images simulated", _int(sim["n_per_structure"])],
        ["box, pixel size", f"{sim['box_px']} px, {sim['pixel_size_A']} Å"],
        ["noise σ²", f"{sim['sigma2']}"],
        ["encoder", f"`{train['model']['family']}`, preset `{train['model']['preset']}`"],
        [
            "training",
            f"{train['epochs']} epochs of {_int(train['pairs_per_epoch'])} pairs, batch {train['batch_size']}",
        ],
        ["images recovered", _int(rec["max_images"])],
        ["refinement rounds", str(rec["refine"]["rounds"])],
    ]
    quality = [
        ["`err_dir` median (after refinement)", _deg(a["err_dir_median"])],
        ["distance MAE of the learned distances", f"{a['dist_mae']:.3f} rad"],
        ["FSC 0.5, map from the recovered orientations vs reference", f"{a['fsc_ref_recovered_05_A']:.1f} Å"],
        ["FSC 0.5, map from the true orientations vs reference", f"{a['fsc_ref_true_05_A']:.1f} Å"],
        ["FSC 0.143 between half-maps", f"{a['fsc_half_0143_A']:.1f} Å"],
    ]
    times = [[stage, _s(s)] for stage, s in r["stage_times_s"].items()] + [["total", _s(r["total_time_s"])]]
    return "\n".join(
        [
            *provenance_lines("demo"),
            "",
            *_table(["setting", "value"], setup),
            "",
            *_table(["quality", "value"], quality),
            "",
            *_table(["stage", "time"], times),
        ]
    )


def _recover_oracle(where: Where) -> str:
    r = load("recover_oracle")
    rows = [
        [_int(x["n"]), x["graph"], _int(x["n_edges"]), f"{x['distance_noise_rad']:.1f}", _s(x["time_recover_s"]),
         _s(x["time_gauge_s"]), _s(x["time_total_s"]), _deg_fine(x["err_o4_median"]), _deg_fine(x["err_rot_median"]),
         _deg_fine(x["err_dir_median"]), _pct(x["acc10"])]
        for x in r["rows"]
    ]  # fmt: skip
    header = ["N", "graph", "edges", "distance noise (rad)", "recovery", "gauge", "total", "`err_o4` median",
              "`err_rot` median", "`err_dir` median", "acc@10°"]  # fmt: skip
    return "\n".join([*provenance_lines("recover_oracle"), "", *_table(header, rows)])


def _recover_scaling(where: Where) -> str:
    r = load("recover_scaling")
    meta = r["meta"]
    rows = [
        [_int(x["n"]), x["graph"], _int(x["n_edges"]), str(x["partitions"]), str(x["num_workers"]),
         _s(x["time_graph_s"]), _s(x["time_recover_s"]), _s(x["time_gauge_s"]), _s(x["time_total_s"]),
         _deg_fine(x["err_o4_median"]), _deg_fine(x["err_rot_median"]),
         " → ".join(f"{v:.1f}" for v in x.get("load_avg_1min_before_after", []))]
        for x in r["rows"]
    ]  # fmt: skip
    header = ["N", "graph", "edges", "parts", "workers", "graph build", "recovery", "gauge", "total",
              "`err_o4` median", "`err_rot` median", "load (1 min) before → after"]  # fmt: skip
    lines = [*provenance_lines("recover_scaling", meta.get("command")), ""]
    lines.append(f"kNN graphs: k = {meta['knn_k']} plus {meta['random_edges']} random edges per image.")
    if meta.get("note"):
        lines += ["", f"Note recorded with the numbers: {meta['note']}"]
    return "\n".join([*lines, "", *_table(header, rows)])


def _refine(where: Where) -> str:
    r = load("refine_projection_matching")
    rows = []
    for x in r["rounds"]:
        ball = f"{x['radius_deg']:.0f}° / {x['step_deg']:.2f}°" if "radius_deg" in x else "start"
        fsc = f"{x['fsc_half_0143_A_after']:.1f} Å" if "fsc_half_0143_A_after" in x else "—"
        rows.append(
            [str(x["round"]), ball, _deg(x["err_rot_median"]), _deg(x["err_rot_mean"]), _deg(x["err_o4_median"]),
             _pct(x["acc10"]), _pct(x["acc20"]), fsc, _s(x["wall_s"]) if "wall_s" in x else "—"]
        )  # fmt: skip
    total = sum(x.get("wall_s", 0) for x in r["rounds"])
    header = ["round", "radius / step", "`err_rot` median", "`err_rot` mean", "`err_o4` median", "acc@10°",
              "acc@20°", "FSC half 0.143", "time"]  # fmt: skip
    setup = (
        f"{_int(r['n_images'])} images of `{r['store']}` from the orientations `{r['orientations']}`, matched in a "
        f"{r['box_px']} px box at {r['resolution_A']:.0f} Å, {r['torch_threads']} torch threads; "
        f"{len(r['rounds']) - 1} rounds in {total / 60:.1f} min."
    )
    return "\n".join([*provenance_lines("refine_projection_matching"), "", setup, "", *_table(header, rows)])


def _simulate(where: Where) -> str:
    r = load("simulate_throughput")
    acc = {(x["backend"], x["box_px"], x["pad"], x["sampling"]): x for x in r["rows"] if x["kind"] == "accuracy"}
    proj = []
    for x in (x for x in r["rows"] if x["kind"] == "projector"):
        a = acc.get((x["backend"], x["box_px"], x["pad"], x["sampling"]), {})
        proj.append(
            [x["backend"], f"{x['box_px']}²", "—" if x["pad"] is None else str(x["pad"]), x["sampling"],
             "on" if x["compile"] else "off", f"{x['img_per_s_per_core']:,.0f}",
             _pct_err(a["rel_l2_mean"]) if a else "—", _pct_err(a["rel_l2_max"]) if a else "—"]
        )  # fmt: skip
    form = [
        [x["structure"], _int(x["n_atoms"]), f"{x['box_px']}²", f"{x['pixel_size_A']:.2f} Å", x["backend"],
         "—" if x["pad"] is None else str(x["pad"]), x["compile"] or "—", f"{x['img_per_s_per_core']:,.0f}"]
        for x in r["rows"] if x["kind"] == "formation"
    ]  # fmt: skip
    store = [
        [str(x["workers"]), f"{x['box_px']}²", _int(x["n_images"]), _s(x["wall_s"]), f"{x['img_per_s']:,.0f}",
         x.get("note", "")]
        for x in r["rows"] if x["kind"] == "store"
    ]  # fmt: skip
    return "\n".join(
        [
            *provenance_lines("simulate_throughput"),
            "",
            "**The projector alone** (1 thread; relative L2 error against exact line integrals of Gaussian atoms):",
            "",
            *_table(
                ["backend", "box", "pad", "sampling", "compile", "images/s per core", "rel. L2 mean", "rel. L2 max"],
                proj,
            ),  # fmt: skip
            "",
            "**A whole shard** (256 images: projection, sub-pixel shift, CTF, noise at σ² 16, 1 thread):",
            "",
            *_table(["structure", "atoms", "box", "pixel", "backend", "pad", "compile", "images/s per core"], form),
            "",
            "**`orirec simulate` end to end into a Zarr store:**",
            "",
            *_table(["workers", "box", "images", "wall time", "images/s", "note"], store),
        ]
    )


def _train(where: Where) -> str:
    r = load("train_throughput")

    def load_avg(x: dict) -> str:
        return f"{x['load_before'][0]:.1f} → {x['load_after'][0]:.1f}" if "load_before" in x else "—"

    step = [
        [x["family"], x["preset"], f"{x['box_px']}²", str(x["batch_size"]), f"{x['s_per_step']:.2f} s",
         f"{x['pairs_per_s']:,.0f}", f"{x['supervised_pairs_per_s']:,.0f}", _int(x["n_params"]), load_avg(x)]
        for x in r["step"]
    ]  # fmt: skip
    lines = [*provenance_lines("train_throughput")]
    if r.get("note"):
        lines += ["", f"Note recorded with the numbers: {r['note']}."]
    lines += [
        "",
        "**One all-pairs optimizer step** (forward, backward, Adam; 1 torch thread):",
        "",
        *_table(
            [
                "family",
                "preset",
                "box",
                "batch",
                "time per step",
                "pairs/s",
                "supervised pairs/s",
                "parameters",
                "load (1 min)",
            ],
            step,
        ),  # fmt: skip
    ]
    if r.get("ray"):
        ray = [
            [str(x["workers"]), f"{x['box_px']}²", str(x["epochs"]), f"{x['pairs_per_s_global']:,.0f}",
             f"{x['pairs_per_s_per_worker']:,.0f}", _s(x["wall_s_with_startup"]), load_avg(x)]
            for x in r["ray"]
        ]  # fmt: skip
        lines += ["", "**Ray Train** (gloo DDP, 1 CPU per worker):", ""]
        lines += _table(["workers", "box", "epochs", "pairs/s", "pairs/s per worker", "wall time with start-up",
                         "load (1 min)"], ray)  # fmt: skip
    if r.get("downsample"):
        ds = [
            [f"{x['downsample']}×", f"{x['best_val_mae_rad']:.3f} rad", f"{x['pairs_per_s']:,.0f}", _s(x["wall_s"]),
             load_avg(x)]
            for x in r["downsample"]
        ]  # fmt: skip
        lines += ["", "**Fourier down-sampling front end** (`vgg` small, 5 epochs on a σ² 16 store):", ""]
        lines += _table(["down-sampling", "best validation MAE", "pairs/s", "wall time", "load (1 min)"], ds)
    return "\n".join(lines)


PREPARATIONS = {
    "clean": "clean projections",
    "raw": "CTF + shifts",
    "phase_flipped": "phase-flipped",
    "unshifted": "shifts undone",
    "phase_flipped_unshifted": "phase-flipped, shifts undone",
}


def _common_lines(where: Where) -> str:
    r = load("commonline_detectability")
    cells: dict[tuple, dict[str, str]] = {}
    for x in r["rows"]:
        key = (x["protein"], x["symmetry"], x["sigma2"])
        cells.setdefault(key, {})[x["preparation"]] = f"{_pct(x['hit_rate'])} ({_deg(x['median_error_deg'])})"
    preps = [p for p in PREPARATIONS if any(p in c for c in cells.values())]
    rows = [
        [f"test protein {p} ({sym})", f"{s2:g}", *(c.get(q, "—") for q in preps)]
        for (p, sym, s2), c in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][2]))
    ]
    setup = (
        f"{r['images_per_protein']} images per protein, every pair; {r['n_angles']} central lines per image; a hit "
        f"is both common-line angles within {r['hit_deg']:.0f}° of the truth. Wall time {r['wall_s'] / 60:.0f} min. "
        "Each cell: the fraction of pairs that hit (the median angle error in brackets)."
    )
    header = ["protein (point group)", "σ²", *(PREPARATIONS[p] for p in preps)]
    return "\n".join([*provenance_lines("commonline_detectability"), "", setup, "", *_table(header, rows)])


def _ab_initio_minibatch(where: Where) -> str:
    r = load("ab_initio_minibatch")
    batch = lambda mb: "every image" if mb is None else f"{_int(mb[0])} → {_int(mb[1])}"  # noqa: E731
    rows = [
        [_int(x["n"]), batch(x["minibatch"]),
         str(x["restarts"]), _s(x["wall_s"]), _s(x["iteration_s_median"]), _s(x["full_pass_s"]),
         f"{x['peak_rss_mb'] / 1024:.1f} GB", _deg_fine(x["err_rot_median"]), _pct(x["acc20"])]
        for x in r["rows"]
    ]  # fmt: skip
    header = ["N", "minibatch (images)", "restarts", "wall", "per iteration (median)", "full pass", "peak RSS",
              "`err_rot` median", "acc@20°"]  # fmt: skip
    return "\n".join([*provenance_lines("ab_initio_minibatch"), "", *_table(header, rows)])


def _ab_initio_scale(where: Where) -> str:
    r = load("ab_initio_scale")
    opt = lambda v, f: "–" if v is None else f(v)  # noqa: E731
    rows = [
        [_int(x["n"]), str(x["workers"]), _int(x["subset"]), opt(x["subset_s"], _s), _s(x["global_pass_s"]),
         _s(x["local_rounds_s"]), _s(x["wall_s"]), f"{x['peak_rss_mb'] / 1024:.1f} GB",
         opt(x["err_rot_median_global"], _deg_fine), _deg_fine(x["err_rot_median"]), _pct(x["acc20"]),
         opt(x["fsc_05_A"], lambda v: f"{v:.1f} Å"), opt(x.get("fsc_05_A_true_poses"), lambda v: f"{v:.1f} Å")]
        for x in r["rows"]
    ]  # fmt: skip
    header = ["N", "workers", "subset", "restarts", "global pass", "rounds and re-pose", "wall",
              "peak PSS (all processes)", "`err_rot` median after the global pass", "after the rounds", "acc@20°",
              "FSC 0.5 vs reference", "the same at the true poses"]  # fmt: skip
    return "\n".join([*provenance_lines("ab_initio_scale"), "", *_table(header, rows)])


def _ab_initio_peers(where: Where) -> str:
    r = load("ab_initio_peers")
    opt = lambda v, f: "–" if v is None else f(v)  # noqa: E731
    rows = []
    for p in r["proteins"]:
        ratio = {x["peer"]: x for x in p["ratios"]}
        for x in p["rows"]:
            q = ratio.get(x["estimator"], {})
            rows.append([p["protein"], f"`{x['estimator']}`", str(x["threads"]), _deg_fine(x["err_rot_median"]),
                         _deg_fine(x["err_rot_mean"]), _pct(x["acc20"]), opt(x["fsc_ref_05_A"], lambda v: f"{v:.1f} Å"),
                         _s(x["time_estimate_s"]), opt(q.get("err_rot_median_ratio"), lambda v: f"{v:.2f}×"),
                         opt(q.get("time_ratio"), lambda v: f"{v:.2f}×")])  # fmt: skip
        rows += [[p["protein"], f"`{name}`", "–", "skipped", "", "", "", "", "", why] for name, why in
                 p.get("skipped", {}).items()]  # fmt: skip
    header = ["protein", "estimator", "threads", "`err_rot` median", "mean", "acc@20°", "FSC 0.5 vs reference",
              "wall", "median / orirec's", "wall / orirec's"]  # fmt: skip
    return "\n".join([*provenance_lines("ab_initio_peers"), "", *_table(header, rows)])


# The JSON behind each results page, and the page (for the README's and the index's links).
PAGES = {
    "demo": ("docs/results/demo.md", "The main job (`make demo`)"),
    "recover_oracle": ("docs/results/recovery.md", "Recovery from exact distances"),
    "recover_scaling": ("docs/results/recovery.md", "Recovery at scale: partitions and Ray workers"),
    "refine_projection_matching": ("docs/results/refinement.md", "Projection-matching refinement"),
    "simulate_throughput": ("docs/results/simulation.md", "Simulation speed and projector accuracy"),
    "train_throughput": ("docs/results/training.md", "Training throughput"),
    "commonline_detectability": ("docs/results/common-lines.md", "Common lines of single pairs"),
    "ab_initio_minibatch": ("docs/results/ab-initio.md", "Ab initio: every image against minibatches"),
    "ab_initio_scale": ("docs/results/ab-initio.md", "Ab initio at dataset scale: a subset, then every image"),
    "ab_initio_peers": ("docs/results/ab-initio.md", "Ab initio against RELION and cryoDRGN on the same images"),
}


def _results_index(where: Where) -> str:
    rows = []
    for stem in sorted(p.stem for p in RESULTS.glob("*.json")):
        page, title = PAGES.get(stem, (None, stem))
        p = provenance(load(stem))
        name = f"[{title}]({where.link(page)})" if page else title
        rows.append([name, f"`benchmarks/{stem}.py`", p["commit"], p["date"], p["machine"], p["cores"]])
    return "\n".join(_table(["results", "benchmark", "commit", "date", "machine", "cores"], rows))


def _headline(where: Where) -> str:
    """Three to five numbers that say what orirec does, each linking to its results page."""
    demo, refine = load("demo"), load("refine_projection_matching")
    oracle, scaling, sim = load("recover_oracle"), load("recover_scaling"), load("simulate_throughput")
    ai_rows = load("ab_initio_scale")["rows"]
    big_ai = max(ai_rows, key=lambda x: (x["n"], -x["workers"]))  # the largest N, in one process (its wall: all)

    def pick(rows: list[dict], what: str, **want) -> dict:
        found = [x for x in rows if all(x.get(k) == v for k, v in want.items())]
        if not found:
            raise ValueError(f"benchmarks/results: no row for {what} ({want})")
        return found[0]

    b, a = demo["before_refinement"], demo["after_refinement"]
    r0, rn = refine["rounds"][0], refine["rounds"][-1]
    o = pick(oracle["rows"], "recovery at N = 1,650", n=1650, distance_noise_rad=0.0)
    big = max(x["n"] for x in scaling["rows"])
    s = pick(scaling["rows"], f"partitioned recovery at N = {big:,}", n=big, num_workers=2)
    nu = pick(sim["rows"], "the NUFFT projector at 64 px", kind="projector", backend="nufft", box_px=64,
              sampling="image")  # fmt: skip
    nu_acc = pick(sim["rows"], "the NUFFT's accuracy at 64 px", kind="accuracy", backend="nufft", box_px=64,
                  sampling="image")  # fmt: skip
    rows = [
        ("demo", "`make demo`: 1,000 images of the embedded pseudo-protein, recovered then refined",
         f"`err_rot` median {_deg(b['err_rot_median'])} → **{_deg(a['err_rot_median'])}** in "
         f"{demo['total_time_s'] / 60:.1f} min"),
        ("refine_projection_matching", f"Projection-matching refinement of {_int(refine['n_images'])} recovered "
         f"orientations (5j0n, σ² 16), {refine['resolution_A']:.0f} Å matching",
         f"`err_rot` median {_deg(r0['err_rot_median'])} → **{_deg(rn['err_rot_median'])}** in "
         f"{len(refine['rounds']) - 1} rounds"),
        ("recover_oracle", f"Recovery from exact distances, N = {_int(o['n'])} ({o['n_edges'] / 1e6:.1f} M edges), "
         "gauge resolved without ground truth",
         f"`err_rot` median **{_deg_fine(o['err_rot_median'])}** in {_s(o['time_total_s'])}"),
        ("recover_scaling", f"Partitioned recovery, N = {_int(s['n'])}, {s['partitions']} parts on "
         f"{s['num_workers']} Ray workers", f"`err_rot` median **{_deg_fine(s['err_rot_median'])}** in "
         f"{_s(s['time_total_s'])}"),
        ("ab_initio_scale", f"Ab initio on a protein no model has seen: {_int(big_ai['n'])} images (1nca, σ² 16, CTF, "
         "shifts), streamed shard by shard",
         f"`err_rot` median **{_deg_fine(big_ai['err_rot_median'])}** in {big_ai['wall_s'] / 60:.1f} min, map FSC 0.5 "
         f"{big_ai['fsc_05_A']:.0f} Å (true poses: {big_ai['fsc_05_A_true_poses']:.0f} Å)"),
        ("simulate_throughput", "Simulation: the NUFFT projector (the CPU default), 64 px images",
         f"**{nu['img_per_s_per_core']:,.0f}** images/s per core, {_pct_err(nu_acc['rel_l2_mean'])} error"),
    ]  # fmt: skip
    table = []
    for stem, what, number in rows:
        p = provenance(load(stem))
        commit = p["commit"] if p["commit"] != NOT_RECORDED else f"commit {NOT_RECORDED}"
        measured = commit if p["date"] == NOT_RECORDED else f"{commit}, {p['date']}"
        table.append([what, number, measured, f"[{PAGES[stem][1]}]({where.link(PAGES[stem][0])})"])
    return "\n".join(_table(["result", "number", "measured", "details"], table))


BLOCKS: dict[str, Callable[[Where], str]] = {
    "demo": _demo,
    "headline": _headline,
    "results-index": _results_index,
    "demo-details": _demo_details,
    "recover-oracle": _recover_oracle,
    "recover-scaling": _recover_scaling,
    "refine": _refine,
    "simulate": _simulate,
    "train": _train,
    "common-lines": _common_lines,
    "ab-initio-minibatch": _ab_initio_minibatch,
    "ab-initio-scale": _ab_initio_scale,
    "ab-initio-peers": _ab_initio_peers,
}


def render(text: str, path: Path = README) -> str:
    """``text`` (the contents of ``path``) with every generated block rendered again from the JSON results."""
    where = Where(path)

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in BLOCKS:
            raise ValueError(f"{path}: unknown generated block '{name}' (known: {', '.join(BLOCKS)})")
        return f"<!-- generated: {name} -->\n{BLOCKS[name](where)}\n<!-- end generated: {name} -->"

    return BLOCK.sub(sub, text)


def sources() -> list[Path]:
    """Every file that may hold generated blocks: README.md and the docs' markdown pages."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def stale() -> list[Path]:
    """The files whose generated blocks differ from the JSON results (none when the docs are current)."""
    missing = [n for n in README_BLOCKS if f"<!-- generated: {n} -->" not in README.read_text()]
    if missing:
        raise ValueError(f"README.md: no generated block {', '.join(missing)}")
    return [p for p in sources() if render(p.read_text(), p) != p.read_text()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only check that README.md and docs/ are up to date")
    a = p.parse_args()
    if a.check:
        bad = stale()
        for path in bad:
            print(f"{path.relative_to(ROOT)}: generated numbers differ from benchmarks/results; "
                  "run python benchmarks/docs.py")  # fmt: skip
        return 1 if bad else 0
    for path in sources():
        old = path.read_text()
        new = render(old, path)
        if new != old:
            path.write_text(new)
            print(f"rewrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
