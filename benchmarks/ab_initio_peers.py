"""Benchmark: orirec's ab initio against the field's tools on identical images (the peer table).

Reproduce: python benchmarks/ab_initio_peers.py --out benchmarks/results/ab_initio_peers.json
(one protein more into the same table: ``--proteins 1jmo --append``; a protein already there is not run again.)
Each test protein is simulated alone at the unseen-protein setting (64 px, 4.7 Å, CTF, ±2 px shifts, σ² 16,
1,500 images), then ``orirec compare`` runs each estimator on the same images and the same cores, one after the
other: ``ab-initio`` (orirec), ``relion-sgd`` (RELION 3.1's SGD initial model and one global assignment pass),
``cryodrgn-abinit`` (cryoDRGN's ab initio, in its own environment) and ``aspire-cl`` (ASPIRE's common lines),
each skipped with its reason (kept in the JSON) when its tool is absent. With ``--refine-rounds`` (default 4)
every estimator's poses are also refined by the same projection matching, a row ``NAME+refine`` each. Last,
``orirec ab-initio --refine-rounds`` (orirec's own job for a new protein: the restarts, the global pass and the
streamed gold-standard rounds) runs on the same images, its row ``ab-initio --refine-rounds`` timed whole and
scored by ``orirec evaluate``. Rows: err_rot median and mean, acc@20, FSC 0.5 against the reference (Å), wall
time and threads; per peer row, the ratios of its err_rot median and wall time to orirec's (that last row). The
JSON is written after every estimator, so a stopped run keeps the finished ones (``--append`` goes on).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _meta import ROOT, run_meta, simulate_unseen_protein

from orirec.config.estimators import CryodrgnConfig, RelionConfig

ORIREC = str(Path(sys.executable).parent / "orirec")  # the console script of this environment
STRUCTURES = ROOT.parent / "shared" / "data" / "structures"
ORIREC_THREADS = 2  # torch's intra-op threads on this 2-core machine (the CLI's default: every core)
THREADS = {"relion-sgd": RelionConfig().threads, "cryodrgn-abinit": CryodrgnConfig().threads}
STREAMED = "ab-initio --refine-rounds"  # the row of orirec's own new-protein job (not a compare estimator)
KEEP = ("err_rot_median", "err_rot_mean", "acc20", "fsc_ref_05_A", "time_estimate_s")


def _compare(store: Path, out: Path, estimator: str, a) -> tuple[list[dict], dict[str, str]]:
    """One estimator's rows of ``orirec compare`` (the kept columns and its threads; ``NAME+refine`` too) and, when
    its tool is absent, its reason. One compare per estimator, so that a stopped run keeps the finished ones."""
    cmd = [ORIREC, "compare", str(store), "--n", str(a.n), "--estimators", estimator, "--refine-rounds",
           str(a.refine_rounds), "--out", str(out), "--no-track"]  # fmt: skip
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0 and not (out / "compare.json").is_file():
        return [], {estimator: (done.stderr.strip().splitlines() or ["failed"])[-1]}
    table = json.loads((out / "compare.json").read_text())
    return [{"estimator": r["estimator"], **{k: r.get(k) for k in KEEP},
             "threads": THREADS.get(r["estimator"].removesuffix("+refine"), ORIREC_THREADS)}
            for r in table["results"]], table.get("skipped", {})  # fmt: skip


def _pending(entry: dict, estimators: list[str]) -> list[str]:
    """The estimators with neither a row nor a skip reason in the protein's entry."""
    done = {r["estimator"] for r in entry["rows"]} | set(entry["skipped"])
    return [e for e in estimators if e not in done]


def _streamed(store: Path, out: Path, a) -> dict:
    """orirec's own job for a new protein on the same images: ``orirec ab-initio --refine-rounds`` (the restarts,
    the global pass and the streamed gold-standard rounds), timed whole, scored by ``orirec evaluate``."""
    t0 = time.perf_counter()
    subprocess.run([ORIREC, "ab-initio", str(store), "--out", str(out), "--refine-rounds", str(a.refine_rounds),
                    "--no-track", "--no-progress"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - t0
    subprocess.run([ORIREC, "evaluate", str(store), "--orientations", str(out / "orientations.csv"), "--out",
                    str(out / "evaluate")], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    m = json.loads((out / "evaluate" / "metrics.json").read_text())
    return {"estimator": STREAMED, "err_rot_median": m["err_rot_median"], "err_rot_mean": m["err_rot_mean"],
            "acc20": m["acc20"], "fsc_ref_05_A": m.get("fsc_ref_recovered_05_A"), "time_estimate_s": wall,
            "threads": ORIREC_THREADS}  # fmt: skip


def ratios(rows: list[dict]) -> list[dict]:
    """Per peer row, its err_rot median and wall time over orirec's best row for a new protein
    (``ab-initio --refine-rounds``, else ``ab-initio+refine``, else ``ab-initio``): above 1, orirec is the more
    accurate or the faster."""
    by = {r["estimator"]: r for r in rows}
    ours = by.get(STREAMED) or by.get("ab-initio+refine") or by.get("ab-initio")
    if ours is None:
        return []
    out = []
    for r in rows:
        if r["estimator"].startswith("ab-initio"):
            continue
        out.append({"peer": r["estimator"], "versus": ours["estimator"],
                    "err_rot_median_ratio": r["err_rot_median"] / ours["err_rot_median"],
                    "time_ratio": r["time_estimate_s"] / ours["time_estimate_s"]})  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--proteins", default="1avx,1nca,3cf3", help="test proteins (ids of the manifest)")
    p.add_argument("--n", type=int, default=1500)
    p.add_argument("--estimators", default="ab-initio,relion-sgd,cryodrgn-abinit,aspire-cl")
    p.add_argument("--refine-rounds", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/ab_initio_peers.json"))
    p.add_argument("--append", action="store_true", help="go on from --out's table (its finished rows are kept)")
    a = p.parse_args()
    result: dict = {"meta": run_meta(), "setting": "64 px, 4.7 Å, CTF, ±2 px, σ² 16", "n": a.n, "proteins": []}
    if a.append and a.out.is_file():
        old = json.loads(a.out.read_text())
        result["proteins"] = old["proteins"]
        result["earlier_meta"] = [*old.get("earlier_meta", []), old["meta"]]
    by_protein = {e["protein"]: e for e in result["proteins"]}
    estimators = [x for x in a.estimators.split(",") if x]
    for pdb_id in [x for x in a.proteins.split(",") if x]:
        entry = by_protein.get(pdb_id)
        if entry is None:
            entry = {"protein": pdb_id, "rows": [], "skipped": {}}
            result["proteins"].append(entry)
        if any(r["estimator"] == STREAMED for r in entry["rows"]) and not _pending(entry, estimators):
            continue  # finished in an earlier run
        with tempfile.TemporaryDirectory(prefix="orirec-bench-peers-") as tmp:
            store = Path(tmp) / "s.zarr"
            # the same images as an earlier, stopped run's (the same seed)
            simulate_unseen_protein(str(STRUCTURES / f"{pdb_id}.cif.gz"), a.n, store, a.seed)
            for estimator in _pending(entry, estimators):
                rows, skipped = _compare(store, Path(tmp) / f"compare-{estimator}", estimator, a)
                entry["rows"] += rows
                entry["skipped"].update(skipped)
                _save(result, entry, a.out)
            if not any(r["estimator"] == STREAMED for r in entry["rows"]):
                entry["rows"].append(_streamed(store, Path(tmp) / "ab-initio", a))
        _save(result, entry, a.out)


def _save(result: dict, entry: dict, out: Path) -> None:
    """Write the table with the entry's ratios (after every estimator, so that a stopped run keeps its rows)."""
    entry["ratios"] = ratios(entry["rows"])
    print(json.dumps(entry), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
