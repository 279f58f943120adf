"""Benchmark: the graph generators on whole real graphs, with every graph audit.

For each dataset (SNAP email-Eu-core, undirected: 1,005 nodes, 16,064 edges; SNAP ca-GrQc's largest
connected component: 4,158 nodes, 13,422 edges; networkx's karate club, Les Miserables, Florentine
families and Davis Southern Women, with their node tables), each generator (dpdegree, dpdk2, privgraph) and
each epsilon (0.5, 1, 2, 4 by default), one child process conforms the graph to its public schema,
splits the edges into train and holdout (the policy's graph holdout share, a fixed seed: a
benchmark, not a release), fits the generator on the training graph, samples one graph, and runs
the graph audit suite (fidelity against the training graph, edge membership, the one-run audit).
Fit time, audit time and the process tree's peak resident memory are measured in the same run. The
table prints the headline figures; the JSON holds every metric of every audit.

    .venv/bin/python bench/graph.py
    .venv/bin/python bench/graph.py --datasets email --generators privgraph --epsilons 1

Results go to bench/results/graph.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from membership import _peak_mb, _versions, in_process  # noqa: E402

DATASETS: dict[str, dict[str, str | None]] = {
    "email": {"edges": "bench/data/graph/email_eu_core/email-Eu-core.txt", "nodes": None,
              "schema": "bench/data/graph/email_eu_core/schema.yaml"},
    "grqc": {"edges": "bench/data/graph/ca_grqc_lcc/ca-GrQc.txt", "nodes": None,
             "schema": "bench/data/graph/ca_grqc_lcc/schema.yaml"},
    # networkx's built-in graphs (small: the audits' intervals are wide and flagged)
    "karate": {"edges": "bench/data/graph/networkx/karate_club_edges.csv",
               "nodes": "bench/data/graph/networkx/karate_club_nodes.csv",
               "schema": "bench/data/graph/networkx/karate_schema.yaml"},
    "lesmis": {"edges": "bench/data/graph/networkx/les_miserables_edges.csv",
               "nodes": "bench/data/graph/networkx/les_miserables_nodes.csv",
               "schema": "bench/data/graph/networkx/les_miserables_schema.yaml"},
    "florentine": {"edges": "bench/data/graph/networkx/florentine_families_edges.csv",
                   "nodes": "bench/data/graph/networkx/florentine_families_nodes.csv",
                   "schema": "bench/data/graph/networkx/florentine_schema.yaml"},
    "davis": {"edges": "bench/data/graph/networkx/davis_southern_women_edges.csv",
              "nodes": "bench/data/graph/networkx/davis_southern_women_nodes.csv",
              "schema": "bench/data/graph/networkx/davis_schema.yaml"},
}
GENERATORS = ("dpdegree", "dpdk2", "privgraph")
SPLIT_SEED = 20261126
SAMPLE_SEED = 7


def run_one(args: dict[str, Any], q: Any) -> None:
    try:
        q.put(_run_one(args))
    except BaseException as exc:  # a child's failure is a row of the table, not a crash of the bench
        q.put({"error": f"{type(exc).__name__}: {exc}"})


def _run_one(args: dict[str, Any]) -> dict[str, Any]:
    from audits.context import AuditContext, Claim
    from audits.graph.suite import run_graph_audits
    from audits.suite import gate_passed
    from policies.loader import load_policy
    from privacy.generators.registry import RegisteredRefitter, get_generator
    from privacy.graphs import read_graph, split_edges
    from privacy.schema import Schema
    from privacy.spend import PrivacySpend

    ds = DATASETS[args["dataset"]]
    schema = Schema.load(ROOT / str(ds["schema"]))
    graph, report, _, _ = read_graph(ROOT / str(ds["edges"]), ROOT / str(ds["nodes"]) if ds["nodes"] else None, schema)
    policy = load_policy(args["policy"])
    train, holdout = split_edges(graph, policy.holdout_for("graph"), SPLIT_SEED)
    options = dict(args["options"])
    spend = PrivacySpend(epsilon=args["epsilon"], delta=args["delta"])
    runs: list[dict[str, Any]] = []
    for rep in range(args["repeats"]):
        # each repeat is a fresh fit (the DP noise comes from OS entropy) on the same split
        started = time.perf_counter()
        fitted = get_generator(args["generator"], **options).fit(train, schema, spend)
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        synthetic = fitted.sample(int(fitted.estimated_rows), SAMPLE_SEED + rep)
        sample_s = time.perf_counter() - started
        refitter = RegisteredRefitter(name=args["generator"], options=options, epsilon=fitted.card.spend.epsilon,
                                      delta=fitted.card.spend.delta)
        ctx = AuditContext(claim=Claim(epsilon=fitted.card.spend.epsilon, delta=fitted.card.spend.delta),
                           refitter=refitter, profile=args["profile"])
        started = time.perf_counter()
        results = run_graph_audits(train, holdout, synthetic, schema, policy, ctx)
        audit_s = time.perf_counter() - started
        metrics = {f"{r.audit}.{m.name}": m.to_dict() for r in results for m in r.metrics}
        runs.append({"fit_s": fit_s, "sample_s": sample_s, "audit_s": audit_s, "metrics": metrics,
                     "synthetic_edges": synthetic.n_edges, "gate_passed": gate_passed(results),
                     "audit_seconds": {r.audit: round(r.seconds or 0.0, 2) for r in results}})
    summary: dict[str, Any] = {}
    for key, first in runs[0]["metrics"].items():
        vals = [r["metrics"][key]["value"] for r in runs if key in r["metrics"]]
        vals = [float(v) for v in vals if v is not None]
        summary[key] = {"value": float(np.mean(vals)) if vals else None,
                        "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
                        "values": vals, "interval_first_fit": first["interval"], "role": first["role"],
                        "threshold": first["threshold"],
                        "passed_all": all(r["metrics"][key]["passed"] is not False for r in runs)}
    return {
        "dataset": args["dataset"], "generator": args["generator"], "epsilon_requested": args["epsilon"],
        "epsilon_spent": fitted.card.spend.epsilon, "delta": fitted.card.spend.delta,
        "nodes": graph.n_nodes, "edges": graph.n_edges, "train_edges": train.n_edges,
        "holdout_edges": holdout.n_edges, "repeats": len(runs),
        "synthetic_edges": float(np.mean([r["synthetic_edges"] for r in runs])),
        "self_loops_dropped": report.self_loops_dropped,
        "fit_s": float(np.mean([r["fit_s"] for r in runs])), "sample_s": float(np.mean([r["sample_s"] for r in runs])),
        "audit_s": float(np.mean([r["audit_s"] for r in runs])),
        "audit_seconds": runs[0]["audit_seconds"], "peak_mb": round(_peak_mb(), 1),
        "gates_passed": sum(r["gate_passed"] for r in runs),
        "card_parameters": fitted.card.parameters, "metrics": summary, "options": options,
    }


#: headline columns of the printed table: (label, metric name searched in the metrics)
HEADLINE = (
    ("fidelity", "graph_fidelity_score"),
    ("deg KS", "degree_ks"),
    ("deg EMD", "degree_emd"),
    ("clust err", "clustering_rel_error"),
    ("tri err", "triangle_rel_error"),
    ("assort diff", "assortativity_abs_diff"),
    ("path KS", "path_length_ks"),
    ("mod err", "modularity_rel_error"),
    ("spectrum", "spectrum_distance"),
    ("comp err", "component_count_rel_error"),
    ("LCC diff", "largest_component_share_diff"),
    ("edge AUC", "edge_membership_auc"),
    ("TPR@1%", "edge_membership_tpr_at_fpr_1pct"),
    ("link AUC", "edge_link_auc"),
    ("1-run LB", "one_run_epsilon_lb"),
    ("game AUC", "game_auc"),
)


def _f(x: Any) -> str:
    return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def _pick_sd(metrics: dict[str, Any], needle: str) -> str:
    for key, m in metrics.items():
        if key.split(".", 1)[1] == needle:
            v, sd = m["value"], m.get("sd")
            return _f(v) + (f" ±{sd:.3f}" if sd is not None and needle == "graph_fidelity_score" else "")
    return "-"


def table(rows: list[dict[str, Any]]) -> str:
    head = ["data", "generator", "eps", "fit s", "peak MB", "edges", *(h for h, _ in HEADLINE), "gates passed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r.get('dataset')} | {r.get('generator')} | {r.get('epsilon_requested')} | "
                         f"ERROR: {r['error']} |")
            continue
        cells = [r["dataset"], r["generator"], f"{r['epsilon_spent']:.3g}", f"{r['fit_s']:.2f}",
                 f"{r.get('tree_peak_mb', r['peak_mb']):.0f}", f"{r['synthetic_edges']:.0f}"]
        cells += [_pick_sd(r["metrics"], needle) for _, needle in HEADLINE]
        cells.append(f"{r['gates_passed']}/{r['repeats']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--generators", nargs="+", default=list(GENERATORS), choices=list(GENERATORS))
    ap.add_argument("--epsilons", nargs="+", type=float, default=[0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--delta", type=float, default=1e-6)
    ap.add_argument("--policy", default="default")
    ap.add_argument("--profile", default="fast", choices=["fast", "thorough"])
    ap.add_argument("--repeats", type=int, default=3, help="fresh fits per configuration (mean and sd reported)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "graph.json"))
    a = ap.parse_args()
    rows = []
    for dataset in a.datasets:
        for generator in a.generators:
            for eps in a.epsilons:
                args = {"dataset": dataset, "generator": generator, "epsilon": eps, "delta": a.delta,
                        "policy": a.policy, "profile": a.profile, "options": {}, "repeats": a.repeats}
                print(f"[{time.strftime('%H:%M:%S')}] {dataset} {generator} eps={eps:g} ...", file=sys.stderr, flush=True)
                res = in_process(args, target=run_one)
                res.setdefault("dataset", dataset)
                res.setdefault("generator", generator)
                res.setdefault("epsilon_requested", eps)
                rows.append(res)
    print(table(rows))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "versions": _versions(("networkx", "numpy", "scipy", "opendp",
                                                                     "smartnoise-synth", "mbi")),
                               "args": vars(a)}, indent=2, default=str))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
