"""Benchmark: the sequential generators on whole real datasets, with every sequence audit.

For each dataset (pbcseq: 312 patients' lab visits; Berka: 1,229 bank accounts' transactions with
a static table), each generator (dpmarkov, dpar) and each epsilon (1 and 4 by default), one child
process conforms the data to its public schema, splits entities into train and holdout (the
policy's holdout fraction, a fixed seed: a benchmark, not a release), fits the generator on the
training entities, samples the DP estimate of their number, and runs the sequence audit suite
(fidelity, utility, privacy) against train and holdout. Fit time, sampling time, audit time and the
process tree's peak resident memory are measured in the same run. The table prints the headline
figures; the JSON holds every metric of every audit.

    .venv/bin/python bench/sequential.py                       # both datasets, both generators, eps 1 and 4
    .venv/bin/python bench/sequential.py --datasets pbcseq --generators dpmarkov --epsilons 1
    .venv/bin/python bench/sequential.py --profile thorough     # adds the entity membership game (slow)

Results go to bench/results/sequential.json (gitignored).
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

from membership import _peak_mb, _versions, in_process  # noqa: E402

DATASETS: dict[str, dict[str, str | None]] = {
    "pbcseq": {"events": "bench/data/pbcseq/pbcseq.csv", "statics": None, "schema": "bench/data/pbcseq/schema.yaml"},
    "berka": {"events": "bench/data/berka/transactions.csv", "statics": "bench/data/berka/accounts.csv",
              "schema": "bench/data/berka/schema.yaml"},
}
SPLIT_SEED = 20261126
SAMPLE_SEED = 7


def run_one(args: dict[str, Any], q: Any) -> None:
    try:
        q.put(_run_one(args))
    except BaseException as exc:  # a child's failure is a row of the table, not a crash of the bench
        q.put({"error": f"{type(exc).__name__}: {exc}"})


def _run_one(args: dict[str, Any]) -> dict[str, Any]:
    from audits.context import AuditContext, Claim
    from audits.sequential.suite import run_sequence_audits
    from audits.suite import gate_passed
    from policies.loader import load_policy
    from privacy.generators.registry import RegisteredRefitter, get_generator
    from privacy.schema import Schema
    from privacy.sequences import conform_sequences, split_entities
    from privacy.spend import PrivacySpend
    from privacy.table import read_raw

    ds = DATASETS[args["dataset"]]
    schema = Schema.load(ROOT / str(ds["schema"]))
    statics = read_raw(ROOT / str(ds["statics"])) if ds["statics"] else None
    data, report = conform_sequences(read_raw(ROOT / str(ds["events"])), statics, schema)
    policy = load_policy(args["policy"])
    train, holdout = split_entities(data, policy.holdout_fraction, SPLIT_SEED)
    options = dict(args["options"])
    spend = PrivacySpend(epsilon=args["epsilon"], delta=args["delta"])
    started = time.perf_counter()
    fitted = get_generator(args["generator"], **options).fit(train, schema, spend)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    synthetic = fitted.sample(max(1, int(fitted.estimated_rows)), SAMPLE_SEED)
    sample_s = time.perf_counter() - started
    refitter = RegisteredRefitter(name=args["generator"], options=options, epsilon=fitted.card.spend.epsilon,
                                  delta=fitted.card.spend.delta)
    ctx = AuditContext(target=schema.target, claim=Claim(epsilon=fitted.card.spend.epsilon,
                                                         delta=fitted.card.spend.delta),
                       refitter=refitter, profile=args["profile"])
    started = time.perf_counter()
    results = run_sequence_audits(train, holdout, synthetic, schema, policy, ctx)
    audit_s = time.perf_counter() - started
    metrics: dict[str, Any] = {}
    for r in results:
        for m in r.metrics:
            d = m.to_dict()
            metrics[f"{r.audit}.{m.name}"] = {"value": d["value"], "interval": d["interval"], "passed": d["passed"],
                                              "role": d["role"], "threshold": d["threshold"]}
    seconds = {r.audit: round(r.seconds or 0.0, 2) for r in results}
    return {
        "dataset": args["dataset"], "generator": args["generator"], "epsilon_requested": args["epsilon"],
        "epsilon_spent": fitted.card.spend.epsilon, "delta": fitted.card.spend.delta,
        "entities": data.n_entities, "events": data.events.height, "train_entities": train.n_entities,
        "holdout_entities": holdout.n_entities, "synthetic_entities": synthetic.n_entities,
        "synthetic_events": synthetic.events.height, "truncated_events": report.truncated_events,
        "fit_s": round(fit_s, 2), "sample_s": round(sample_s, 2), "audit_s": round(audit_s, 2),
        "audit_seconds": seconds, "peak_mb": round(_peak_mb(), 1), "gate_passed": gate_passed(results),
        "card_parameters": fitted.card.parameters, "metrics": metrics, "options": options,
    }


#: headline columns of the printed table: (label, metric key suffix searched in the metrics)
HEADLINE = (
    ("quality", "sequence_quality_score"),
    ("events", "event_column_shapes"),
    ("statics", "static_column_shapes"),
    ("lengths", "length_similarity"),
    ("gaps", "gap_similarity"),
    ("transit.", "transition_similarity"),
    ("autocorr", "autocorrelation_similarity"),
    ("disc AUC", "discriminator_auc"),
    ("outcome", "utility_auc_ratio"),
    ("next ev.", "next_event_auc_ratio"),
    ("DCR", "dcr_share"),
    ("sing.out", "singling_out_multivariate"),
    ("link", "linkability"),
    ("infer", "inference"),
    ("1-run LB", "one_run_epsilon_lb"),
    ("game AUC", "game_auc"),
)


def _pick(metrics: dict[str, Any], needle: str) -> Any:
    for key, m in metrics.items():
        if key.split(".", 1)[1] == needle:
            return m["value"]
    return None


def _f(x: Any) -> str:
    return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ["dataset", "generator", "eps", "fit s", "peak MB", *(h for h, _ in HEADLINE), "gate"]
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for r in rows:
        if "error" in r:
            print(f"{r.get('dataset')} | {r.get('generator')} | {r.get('epsilon_requested')} | ERROR: {r['error']}")
            continue
        cells = [r["dataset"], r["generator"], f"{r['epsilon_spent']:.3g}", f"{r['fit_s']:.1f}",
                 f"{r.get('tree_peak_mb', r['peak_mb']):.0f}"]
        cells += [_f(_pick(r["metrics"], needle)) for _, needle in HEADLINE]
        cells.append("pass" if r["gate_passed"] else "fail")
        print(" | ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--generators", nargs="+", default=["dpmarkov", "dpar"], choices=["dpmarkov", "dpar"])
    ap.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 4.0])
    ap.add_argument("--delta", type=float, default=1e-6)
    ap.add_argument("--policy", default="default")
    ap.add_argument("--profile", default="fast", choices=["fast", "thorough"])
    ap.add_argument("--dpar-epochs", type=int, default=None, help="dpar: epochs (default: the generator's)")
    ap.add_argument("--dpar-time-limit", type=float, default=None, help="dpar: training time limit in seconds")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sequential.json"))
    a = ap.parse_args()
    rows = []
    for dataset in a.datasets:
        for generator in a.generators:
            for eps in a.epsilons:
                options: dict[str, Any] = {}
                if generator == "dpar":
                    options["device"] = "auto"
                    if a.dpar_epochs is not None:
                        options["epochs"] = a.dpar_epochs
                    if a.dpar_time_limit is not None:
                        options["time_limit_s"] = a.dpar_time_limit
                args = {"dataset": dataset, "generator": generator, "epsilon": eps, "delta": a.delta,
                        "policy": a.policy, "profile": a.profile, "options": options}
                print(f"[{time.strftime('%H:%M:%S')}] {dataset} {generator} eps={eps:g} ...", file=sys.stderr, flush=True)
                res = in_process(args, target=run_one)
                res.setdefault("dataset", dataset)
                res.setdefault("generator", generator)
                res.setdefault("epsilon_requested", eps)
                rows.append(res)
    print_table(rows)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "versions": _versions(("torch", "opacus", "smartnoise-synth", "mbi",
                                                                     "sdmetrics", "anonymeter", "polars")),
                               "args": vars(a)}, indent=2, default=str))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
