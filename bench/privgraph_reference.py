"""Benchmark: our privgraph against the PrivGraph authors' own synthetic graphs, on their datasets.

The PrivGraph paper (Yuan et al., USENIX Security 2023) evaluates on datasets that are not ours
(its code ships Chamelon, Facebook, CA-HepPh and Enron), and its reference implementation
(github.com/Privacy-Graph/PrivGraph) ships one synthetic graph per dataset at epsilon 1.5
(``result/PrivGraph_<name>_1.5.txt``). This script compares, on the same real graph and with our
fidelity audit (``audits.graph.fidelity.compare_graphs``), the authors' synthetic graph with
synthetic graphs from our privgraph (pure epsilon, as the paper) and, for context, dpdegree and
dpdk2, all at epsilon 1.5 and fitted on the whole real graph (no holdout: the authors' graph was
made from the whole graph). The datasets are not copied into this repository; pass a checkout:

    git clone https://github.com/Privacy-Graph/PrivGraph /tmp/PrivGraph
    .venv/bin/python bench/privgraph_reference.py --reference-dir /tmp/PrivGraph --datasets Facebook Chamelon

Results go to bench/results/privgraph_reference.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audits.graph.fidelity import compare_graphs  # noqa: E402
from privacy.generators.registry import get_generator  # noqa: E402
from privacy.graph_spec import GraphSpec  # noqa: E402
from privacy.graphs import GraphData, canonical_edges  # noqa: E402
from privacy.schema import Schema  # noqa: E402
from privacy.spend import PrivacySpend  # noqa: E402

EPSILON = 1.5


def read_pairs(path: Path) -> np.ndarray:
    rows = [ln.split()[:2] for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return np.asarray(rows, dtype=np.int64)


def load(ref: Path, name: str) -> tuple[GraphData, GraphData, Schema]:
    """The real graph (ids relabelled 0..n-1 in sorted order, as the reference code does) and the
    authors' synthetic graph over the same n nodes."""
    raw = read_pairs(ref / "data" / f"{name}.txt")
    ids = np.unique(raw)
    real_edges = canonical_edges(np.searchsorted(ids, raw), directed=False)
    n = int(ids.size)
    spec = GraphSpec(directed=False, nodes="public", node_count=n, self_loops="drop", duplicates="merge",
                     max_degree=128)
    schema = Schema(columns=(), kind="graph", graph=spec, name=name)
    labels = tuple(str(i) for i in range(n))
    real = GraphData(n_nodes=n, edges=real_edges, spec=spec, labels=labels)
    theirs_raw = read_pairs(ref / "result" / f"PrivGraph_{name}_{EPSILON:g}.txt")
    if theirs_raw.max() >= n:
        raise SystemExit(f"{name}: the reference synthetic graph names node {theirs_raw.max()} >= n = {n}")
    theirs = real.with_edges(theirs_raw)
    return real, theirs, schema


def summary(real: GraphData, syn: GraphData) -> dict[str, Any]:
    comps = compare_graphs(real, syn, seed=0)
    out = {c.name: c.value for c in comps}
    sims = [c.similarity for c in comps if c.similarity is not None]
    out["graph_fidelity_score"] = float(np.mean(sims))
    out["edges"] = syn.n_edges
    return out


COLUMNS = ("edges", "graph_fidelity_score", "degree_ks", "clustering_rel_error", "triangle_rel_error",
           "assortativity_abs_diff", "path_length_ks", "modularity_rel_error", "spectrum_distance")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-dir", required=True, type=Path)
    ap.add_argument("--datasets", nargs="+", default=["Facebook", "Chamelon"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "privgraph_reference.json"))
    a = ap.parse_args()
    rows = []
    for name in a.datasets:
        real, theirs, schema = load(a.reference_dir, name)
        print(f"{name}: {real.n_nodes} nodes, {real.n_edges} edges", file=sys.stderr, flush=True)
        rows.append({"dataset": name, "generator": "PrivGraph reference (authors' output)", "fit_s": None,
                     **summary(real, theirs)})
        for gen, options in (("privgraph", {"mechanism": "laplace"}), ("dpdegree", {"noise": "laplace"}),
                             ("dpdk2", {})):
            runs = []
            for rep in range(a.repeats):
                started = time.perf_counter()
                fitted = get_generator(gen, **options).fit(real, schema, PrivacySpend(epsilon=EPSILON, delta=0.0))
                fit_s = time.perf_counter() - started
                runs.append({"fit_s": fit_s, **summary(real, fitted.sample(real.n_nodes, rep))})
            mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            mean["fidelity_sd"] = float(np.std([r["graph_fidelity_score"] for r in runs], ddof=1)) if len(runs) > 1 else 0.0
            rows.append({"dataset": name, "generator": f"synthgate {gen}", **mean})
            print(f"  {gen}: fidelity {mean['graph_fidelity_score']:.3f}", file=sys.stderr, flush=True)
    head = ["dataset", "generator", *COLUMNS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["dataset"], r["generator"]]
        cells += [f"{r[c]:.0f}" if c == "edges" else f"{r[c]:.3f}" for c in COLUMNS]
        print("| " + " | ".join(cells) + " |")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"epsilon": EPSILON, "rows": rows}, indent=2))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
