"""``orirec compare --protein A,B,…``: the comparison on each of several proteins, then one protein × estimator
table (issue 9: per-protein results of the estimators that need no training on unseen test proteins).

Each protein's comparison is a full :func:`~orirec.studies.compare.compare_estimators` run in ``OUT/<id>/``;
one whose ``compare.json`` already holds the requested estimators on the same images is read back instead of
run again, so an interrupted sweep resumes after its last finished protein.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from orirec.evaluate.distances import protein_name
from orirec.pipeline.stages import write_json
from orirec.store import open_store
from orirec.studies.compare import compare_estimators
from orirec.studies.per_protein import chance_err_rot_deg, protein_rg_A
from orirec.studies.tables import markdown_table

__all__ = ["PROTEIN_COLUMNS", "compare_proteins"]

PROTEIN_COLUMNS = [
    ("id", "protein", "{}"),
    ("symmetry", "sym", "{}"),
    ("n_atoms", "atoms", "{}"),
    ("rg_A", "Rg (Å)", "{:.1f}"),
    ("n", "images", "{}"),
    ("estimator", "estimator", "{}"),
    ("err_rot_median", "err_rot med (°)", "{:.1f}"),
    ("err_o4_median", "err_o4 med (°)", "{:.1f}"),
    ("acc20", "acc@20", "{:.2f}"),
    ("fsc_ref_05_A", "FSC ref 0.5 (Å)", "{:.1f}"),
    ("chance_err_rot_deg", "chance err_rot (°)", "{:.0f}"),
    ("time_estimate_s", "time (s)", "{:.0f}"),
]


def _finished(path: Path, names: list[str] | None, n_images: int) -> list[dict[str, Any]] | None:
    """The rows of an earlier comparison of the same estimators on the same number of images, else None."""
    if not path.is_file():
        return None
    rows = json.loads(path.read_text()).get("results", [])
    got = [r["estimator"] for r in rows if not r["estimator"].endswith("+refine")]
    same = rows and (names is None or got == names) and all(r.get("n") == n_images for r in rows)
    return rows if same else None


def compare_proteins(
    store: Path, out_dir: Path, proteins: list[int], names: list[str] | None = None, n: int = 150, log=None, **kw
) -> list[dict[str, Any]]:
    """Run :func:`compare_estimators` (keyword arguments ``kw``) on the first ``n`` images of each protein of
    ``proteins`` (store indices); write ``proteins.md``, ``proteins.csv`` and ``proteins.json`` (one row per
    protein and estimator, with the protein's point group, atom count and radius of gyration) in ``out_dir``."""
    s = open_store(store)
    present = set(np.unique(s.protein).tolist())
    missing = [p for p in proteins if p not in present]
    if missing:
        raise ValueError(f"{store}: proteins {missing[:10]} have no images")
    infos, say = s.proteins, log or (lambda line: None)
    rows: list[dict[str, Any]] = []
    for k, p in enumerate(proteins):
        info = infos[p] if p < len(infos) else {}
        pid = protein_name(info, p)
        sub = out_dir / pid
        n_p = min(n, int(np.sum(s.protein == p)))
        done = _finished(sub / "compare.json", names, n_p)
        say(f"[{k + 1}/{len(proteins)}] {pid}: " + ("done before, read back" if done else "running"))
        results = done or compare_estimators(store, sub, names, n=n, protein=p, log=log, **kw)
        meta = {"protein": p, "id": pid, "symmetry": s.symmetry(p)}
        meta["chance_err_rot_deg"] = chance_err_rot_deg(n_p, symmetry=meta["symmetry"])
        meta |= {"n_atoms": info.get("n_atoms"), "rg_A": protein_rg_A(s, p)}
        for r in results:
            rows.append({**meta, **{k: v for k, v in r.items() if not isinstance(v, list | dict)}})
    _write(out_dir, store, rows)
    return rows


def _write(out_dir: Path, store: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    head = f"Estimators on each protein of {store} (first images of each; per-protein folders beside this file)\n\n"
    (out_dir / "proteins.md").write_text(head + markdown_table(rows, PROTEIN_COLUMNS) + "\n")
    pd.DataFrame(rows).to_csv(out_dir / "proteins.csv", index=False)
    write_json(out_dir / "proteins.json", {"store": str(store), "results": rows})
    if rows:
        _plot(out_dir / "proteins.png", rows)


def _plot(path: Path, rows: list[dict[str, Any]]) -> None:
    """``err_rot`` median (°) of each estimator against the protein's atom count and radius of gyration (Å), with
    each protein's chance level (grey dashes) and the 15° line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    get = lambda rs, k: np.asarray([np.nan if r.get(k) is None else r[k] for r in rs], dtype=np.float64)  # noqa: E731
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    first = [r for r in rows if r["estimator"] == names[0]]
    for ax, key, label in ((axes[0], "n_atoms", "atoms"), (axes[1], "rg_A", "radius of gyration (Å)")):
        ax.scatter(get(first, key), get(first, "chance_err_rot_deg"), marker="_", s=80, color="grey", label="chance")
        for name in names:
            sub = [r for r in rows if r["estimator"] == name]
            ax.scatter(get(sub, key), get(sub, "err_rot_median"), s=16, label=name)
        ax.axhline(15, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log" if key == "n_atoms" else "linear")
        ax.set_xlabel(label)
        ax.set_ylabel("err_rot median (°)")
        ax.set_ylim(0, 180)
    axes[0].legend(frameon=False, fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
