"""Benchmark (not a test): the deep DP generators against MST and AIM on Adult and Taiwan credit default.

For each dataset (Adult, 32,561 rows, mostly categorical; Taiwan credit default, 30,000 x 23 plus the
target, mostly continuous), generator (dpctgan, dpdiffusion, patectgan, mst, aim) and epsilon (1, 3,
10 at delta 1e-9 by default), fitted on the training split of the default policy's holdout split:
the fit time, the epsilon the generator's card says it spent against the one requested, peak memory,
SDMetrics quality and diagnostic scores (``audits.fidelity``), the train-on-synthetic / test-on-real
AUC ratio for the dataset's target (``audits.utility``), and the fast profile's membership figures
(DCR share from ``audits.membership``; the DOMIAS AUC with its interval and TPR at FPR 1% from
``audits.domias``; the one-run epsilon lower bound from ``audits.one_run`` only with ``--one-run``,
because it refits the generator once). For the deep generators trained by DP-SGD, the training
throughput (``training_stats["samples_per_second"]``) and that of the same model trained without
DP (the generator module's ``fit_nonprivate``, NOT differentially private, run once per dataset and
generator, with the same options, in its own process right after the first epsilon's configuration,
whose row it joins: both fits start cold), and their ratio
(issue goal: DP / non-DP >= 0.5). PATECTGAN is not trained by DP-SGD and has no non-private twin:
its throughput figures are n/a.

Each configuration runs in its own spawned process (its peak RSS is its own); progress goes to
stderr, a markdown table to stdout, everything (with machine information) to JSON, rewritten after
every configuration so that a stopped run keeps its rows.

    .venv/bin/python bench/deep_tabular.py [--datasets adult,taiwan]
        [--generators dpctgan,dpdiffusion,patectgan,mst,aim] [--epsilons 1,3,10] [--delta 1e-9]
        [--rows N] [--epochs N] [--batch-size N] [--device auto|cpu|cuda] [--time-limit S]
        [--aim-time-limit 60] [--aim-max-rounds N] [--no-audit] [--one-run]
        [--out bench/results/deep_tabular.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from membership import _ci, _f, _log, _machine, _metric, _peak_mb  # noqa: E402
from membership import _versions as membership_versions  # noqa: E402
from membership import in_process as membership_in_process  # noqa: E402

DELTA = 1e-9
SPLIT_SEED = 0
SAMPLE_SEED = 1
#: the seed of the ``--rows`` subsample (taken before the split)
SUBSAMPLE_SEED = 0
DEEP = ("dpctgan", "dpdiffusion", "patectgan")
GENERATORS = (*DEEP, "mst", "aim")
DATASETS = ("adult", "taiwan")
SHARED = ROOT.parent / "shared" / "data" / "tabular"
TAIWAN_DIR = BENCH / "data" / "taiwan_credit"
TAIWAN_TARGET_RAW = "default.payment.next.month"
TAIWAN_TARGET = "default_next_month"
#: issue goal for the DP-SGD throughput relative to the same model trained without DP
RATIO_GOAL = 0.5


# ----------------------------------------------------------------------------- data


def load_taiwan(path: Path):  # type: ignore[no-untyped-def]
    """(schema, conformed frame, notes): ID dropped, the target renamed, rows with a missing AGE dropped."""
    import polars as pl

    from privacy.schema import Schema
    from privacy.table import conform, read_raw

    schema = Schema.load(TAIWAN_DIR / "schema.yaml")
    raw = read_raw(path)
    notes: dict[str, Any] = {"source_rows": raw.height}
    # ID identifies a row and is not released; conform refuses a column that is not in the schema
    raw = raw.drop("ID").rename({TAIWAN_TARGET_RAW: TAIWAN_TARGET})
    # this copy of the file holds the text 'nan' for 2 ages; numeric schema columns must be complete
    age = raw.get_column("AGE").str.strip_chars().cast(pl.Float64, strict=False)
    keep = age.is_not_null() & age.is_not_nan()
    notes["dropped_missing_age"] = int((~keep).sum())
    raw = raw.filter(keep)
    df, report = conform(raw, schema, path_hint=str(path))
    notes["conform"] = {"rows": report.rows, "clipped": report.clipped, "mapped_to_other": report.mapped_to_other}
    return schema, df, notes


def load_dataset(name: str, paths: dict[str, str], rows: int | None, holdout_fraction: float):  # type: ignore[no-untyped-def]
    """(schema, train, holdout, notes): the conformed source, subsampled to ``rows``, then split."""
    from privacy.split import train_holdout

    if name == "adult":
        from tabular_path import load_adult

        schema, df, _train, _holdout = load_adult(Path(paths["adult"]))
        notes: dict[str, Any] = {"source_rows": df.height}
    elif name == "taiwan":
        schema, df, notes = load_taiwan(Path(paths["taiwan"]))
    else:
        raise ValueError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    notes["conformed_rows"] = df.height
    if rows and rows < df.height:
        df = df.sample(n=rows, seed=SUBSAMPLE_SEED)
        notes["subsampled_to"] = rows
    train, holdout = train_holdout(df, holdout_fraction, seed=SPLIT_SEED)
    return schema, train, holdout, notes


def generator_options(generator: str, a: argparse.Namespace) -> dict[str, Any]:
    """The registered generator's options from the command line (only those given)."""
    opts: dict[str, Any] = {}
    if generator in DEEP:
        if a.epochs is not None:
            opts["epochs"] = a.epochs
        if a.batch_size is not None:
            opts["batch_size"] = a.batch_size
        opts["device"] = a.device
        if a.time_limit:
            opts["time_limit_s"] = a.time_limit
    elif generator == "aim":
        if a.aim_time_limit:
            opts["time_limit_s"] = a.aim_time_limit
        if a.aim_max_rounds:
            opts["max_rounds"] = a.aim_max_rounds
    return opts


# ----------------------------------------------------------------------------- one configuration


def run_config(args: dict[str, Any], q: Any) -> None:
    """Child process: fit, sample and audit (or, with ``mode`` "twin", the non-private twin); put one result
    dict on ``q``."""
    try:
        q.put(_run_twin(args) if args.get("mode") == "twin" else _run_config(args))
    except BaseException:  # noqa: B036 - reported to the parent, which carries on
        q.put({"error": traceback.format_exc(), "peak_mb": _peak_mb()})


def _jsonable(x: Any) -> Any:
    """Card parameters as JSON (NaN and infinities as None, unknown objects as text)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if x is None or isinstance(x, (bool, int, str)):
        return x
    return str(x)


def _speed(fitted: Any) -> float | None:
    """DP-SGD training throughput (kept on the fitted model, off the released card)."""
    v = getattr(fitted, "training_stats", {}).get("samples_per_second")
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _run_config(args: dict[str, Any]) -> dict[str, Any]:
    from audits.context import AuditContext, Claim
    from audits.domias import run_domias
    from audits.fidelity import run_fidelity
    from audits.membership import run_membership
    from audits.one_run import run_one_run
    from audits.utility import run_utility
    from policies import load_policy
    from privacy.generators.registry import RegisteredRefitter, get_generator
    from privacy.spend import PrivacySpend

    started = time.perf_counter()
    label = f"{args['dataset']} {args['generator']} eps={args['epsilon']:g}"
    say = lambda msg: _log(label, started, msg)  # noqa: E731

    last = [0.0]

    def progress(msg: str, fraction: float | None = None) -> None:
        # generators report every epoch; keep stderr readable (at most one line every 10 s)
        now = time.perf_counter()
        if now - last[0] >= 10.0 or fraction in (0.0, 1.0):
            last[0] = now
            say(msg if fraction is None else f"{msg} ({fraction:.0%})")

    policy = load_policy("default")
    schema, train, holdout, data_notes = load_dataset(args["dataset"], args["paths"], args["rows"],
                                                      policy.holdout_fraction)
    say(f"loaded: {train.height} train / {holdout.height} holdout rows")
    name, options, delta = args["generator"], dict(args["options"]), args["delta"]

    t0 = time.perf_counter()
    fitted = get_generator(name, **options).fit(train, schema, PrivacySpend(epsilon=args["epsilon"], delta=delta),
                                                 progress=progress)
    fit_s = time.perf_counter() - t0
    card = fitted.card
    spent = float(card.spend.epsilon)
    say(f"fit: {fit_s:.1f}s, epsilon spent {spent:.4g}")
    t0 = time.perf_counter()
    synthetic = fitted.sample(train.height, SAMPLE_SEED)
    sample_s = time.perf_counter() - t0
    fit_peak = _peak_mb()
    say(f"sample {synthetic.height} rows: {sample_s:.1f}s")

    results: dict[str, Any] = {}
    if args["audit"]:
        refitter = RegisteredRefitter(name=name, options=dict(options), epsilon=args["epsilon"], delta=delta)
        ctx = AuditContext(claim=Claim(epsilon=spent, delta=delta), refitter=refitter, profile="fast",
                           target=schema.target, progress=say)
        audits: dict[str, Any] = {"fidelity": lambda *a: run_fidelity(*a[:5], ctx=None), "utility": run_utility,
                                  "membership": run_membership, "domias": run_domias}
        if args["one_run"]:
            audits["one_run"] = run_one_run
        for audit, fn in audits.items():
            t0 = time.perf_counter()
            try:
                r = fn(train, holdout, synthetic, schema, policy, ctx)
                results[audit] = {"seconds": time.perf_counter() - t0, "notes": list(r.notes),
                                  "metrics": [m.to_dict() for m in r.metrics]}
            except Exception:
                results[audit] = {"seconds": time.perf_counter() - t0, "error": traceback.format_exc(), "metrics": []}
            say(f"{audit}: {results[audit]['seconds']:.1f}s" + (" (error)" if "error" in results[audit] else ""))
    return {
        "rows": {"train": train.height, "holdout": holdout.height, "synthetic": synthetic.height},
        "data": data_notes,
        "fit_s": fit_s,
        "sample_s": sample_s,
        "epsilon_requested": args["epsilon"],
        "epsilon_spent": spent,
        "delta_spent": float(card.spend.delta),
        "estimated_rows": int(fitted.estimated_rows),
        "samples_per_second": _speed(fitted),
        "card": _jsonable(card.to_dict()),
        "audits": results,
        "fit_peak_mb": fit_peak,
        "peak_mb": _peak_mb(),
        "total_s": time.perf_counter() - started,
    }


def _run_twin(args: dict[str, Any]) -> dict[str, Any]:
    """The deep generator's model trained WITHOUT DP (``fit_nonprivate``), for its training throughput only.

    Its own process, like the DP fit, so that both start cold (imports, allocator, thread pools)."""
    import importlib

    from policies import load_policy
    from privacy.generators.tabular.registry import GENERATORS as REGISTERED

    started = time.perf_counter()
    label = f"{args['dataset']} {args['generator']} non-private twin (NOT DP, speed only)"
    module = importlib.import_module(REGISTERED[args["generator"]].__module__)
    fit_nonprivate = getattr(module, "fit_nonprivate", None)
    if fit_nonprivate is None:
        return {"skipped": f"{module.__name__} has no fit_nonprivate"}
    policy = load_policy("default")
    schema, train, _holdout, _notes = load_dataset(args["dataset"], args["paths"], args["rows"],
                                                   policy.holdout_fraction)
    _log(label, started, f"fitting on {train.height} rows")
    t0 = time.perf_counter()
    fitted = fit_nonprivate(train, schema, **args["options"])
    fit_s = time.perf_counter() - t0
    speed = _speed(fitted)
    _log(label, started, f"{fit_s:.1f}s, {_speed_cell(speed)} samples/s")
    return {"fit_s": fit_s, "samples_per_second": speed, "parameters": _jsonable(fitted.card.parameters),
            "peak_mb": _peak_mb(), "total_s": time.perf_counter() - started}


def in_process(args: dict[str, Any]) -> dict[str, Any]:
    """One configuration in a spawned process (``membership.in_process`` with this file's ``run_config``)."""
    return membership_in_process(args, run_config)


# ----------------------------------------------------------------------------- figures and table


def figures(res: dict[str, Any], twin_speed: float | None) -> dict[str, Any]:
    """The summary figures of one configuration (None where not measured)."""
    def val(audit: str, metric: str) -> Any:
        m = _metric(res, audit, metric)
        return None if m is None else m["value"]

    def ci(audit: str, metric: str) -> Any:
        m = _metric(res, audit, metric)
        return None if m is None else m["interval"]

    params = res.get("card", {}).get("parameters", {})
    dp_speed = res.get("samples_per_second")
    one = _metric(res, "one_run", "one_run_epsilon_lb")
    return {
        "fit_s": res.get("fit_s"),
        "sample_s": res.get("sample_s"),
        "epsilon_requested": res.get("epsilon_requested"),
        "epsilon_spent": res.get("epsilon_spent"),
        # the time limit set the training length (a step or epoch count fixed before training)
        "stopped_by_time": bool(params.get("steps_limited_by_time") or params.get("epochs_limited_by_time")),
        "epochs_run": params.get("epochs_run"),
        "dp_samples_per_second": dp_speed,
        "nonprivate_samples_per_second": twin_speed,
        "speed_ratio": dp_speed / twin_speed if dp_speed and twin_speed else None,
        "quality": val("fidelity", "quality_score"),
        "diagnostic": val("fidelity", "diagnostic_score"),
        "utility_ratio": val("utility", "utility_auc_ratio"),
        "utility_auc_tstr": (_metric(res, "utility", "utility_auc_ratio") or {}).get("details", {}).get("auc_tstr"),
        "utility_auc_trtr": (_metric(res, "utility", "utility_auc_ratio") or {}).get("details", {}).get("auc_trtr"),
        "dcr_share": val("membership", "dcr_share"),
        "dcr_interval": ci("membership", "dcr_share"),
        "domias_auc": val("domias", "domias_auc"),
        "domias_interval": ci("domias", "domias_auc"),
        "domias_tpr_at_1pct": val("domias", "domias_tpr_at_fpr_1pct"),
        "one_run_epsilon_lb": None if one is None else one["value"],
        "audit_s": {a: r["seconds"] for a, r in res.get("audits", {}).items()},
        "audit_errors": [a for a, r in res.get("audits", {}).items() if "error" in r],
        "peak_mb": res.get("peak_mb"),
        "tree_peak_mb": res.get("tree_peak_mb"),
    }


def _speed_cell(x: Any) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def table(rows: list[dict[str, Any]], delta: float, one_run: bool) -> str:
    head = ["data", "gen", "eps", "eps spent", "fit s", "sample s", "DP samples/s", "non-DP samples/s", "ratio", "quality",
            "diag", "utility", "DCR", "DOMIAS AUC", "TPR@1%"] + (["1run eps"] if one_run else []) + ["peak MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r.get("figures")
        if s is None:
            why = (r.get("error") or "error").strip().splitlines()[-1]
            cells = [r["dataset"], r["generator"], f"{r['epsilon']:g}", f"not run: {why}"] + [""] * (len(head) - 4)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        ratio = s["speed_ratio"]
        cells = [
            r["dataset"], r["generator"], f"{r['epsilon']:g}",
            _f(s["epsilon_spent"], 3),
            _f(s["fit_s"], 1) + ("*" if s["stopped_by_time"] else ""),
            _f(s["sample_s"], 1),
            _speed_cell(s["dp_samples_per_second"]) if r["generator"] in DEEP else "-",
            _speed_cell(s["nonprivate_samples_per_second"]) if r["generator"] in DEEP else "-",
            ("n/a" if ratio is None else f"{ratio:.2f}") if r["generator"] in DEEP else "-",
            _f(s["quality"]), _f(s["diagnostic"]), _f(s["utility_ratio"]), _f(s["dcr_share"]),
            _ci(s["domias_auc"], s["domias_interval"]), _f(s["domias_tpr_at_1pct"], 3),
        ] + ([_f(s["one_run_epsilon_lb"], 2)] if one_run else []) + [
            f"{s['peak_mb']:.0f}" + (f" (tree {s['tree_peak_mb']:.0f})"
                                     if (s["tree_peak_mb"] or 0) > (s["peak_mb"] or 0) + 50 else "")
            + (f" (audit errors: {', '.join(s['audit_errors'])})" if s["audit_errors"] else ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        f"eps: requested epsilon (delta {delta:g}); eps spent: the generator card's epsilon (deep generators charge "
        "the accountant's figure for the steps run, at most the request).",
        "fit s: wall time of fit on the training split (* = training length set by --time-limit, before training); sample s: drawing as many "
        "rows as the training split has. DP samples/s: training "
        "throughput under DP-SGD (the fitted model's training_stats, not on the released card); non-DP samples/s: the same model and options "
        "trained without DP (fit_nonprivate; measured once per dataset and generator, after the first epsilon's "
        f"configuration, in its own process); ratio: DP / non-DP (issue goal >= {RATIO_GOAL:g}); n/a: not measured "
        "(patectgan is not DP-SGD and has no twin), -: not a DP-SGD generator.",
        "quality, diag: SDMetrics quality and diagnostic scores vs the training split. utility: TSTR/TRTR ROC-AUC "
        "ratio for the dataset's target. DCR: worst share of synthetic rows nearer train than holdout (fast "
        "profile). DOMIAS AUC [95% interval] and TPR at FPR 1%." + (" 1run eps: one-run epsilon lower bound "
                                                                     "(one refit)." if one_run else ""),
        "peak MB: the configuration process's peak RSS (VmHWM) over fit, sample and audits; tree: the peak total RSS of it and its workers, sampled every 0.5 s, shown where larger.",
    ]
    return "\n".join(lines + notes)


# ----------------------------------------------------------------------------- main


def _versions() -> dict[str, str | None]:
    return membership_versions(("numpy", "polars", "scikit-learn", "scipy", "joblib", "smartnoise-synth", "mbi",
                                "jax", "torch", "opacus", "sdmetrics", "opendp"))


def _devices() -> dict[str, Any]:
    try:
        import torch

        cuda = torch.cuda.is_available()
        return {"cuda_available": cuda, "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                if cuda else [], "torch_threads": torch.get_num_threads()}
    except Exception as exc:  # noqa: BLE001 - information only
        return {"error": f"{type(exc).__name__}: {exc}"}


def plan(a: argparse.Namespace) -> list[dict[str, Any]]:
    """The configurations to run, in order: per dataset, generator, epsilon."""
    datasets = [d.strip() for d in a.datasets.split(",") if d.strip()]
    generators = [g.strip() for g in a.generators.split(",") if g.strip()]
    epsilons = [float(e) for e in a.epsilons.split(",") if e.strip()]
    for d in datasets:
        if d not in DATASETS:
            raise SystemExit(f"unknown dataset {d!r} (known: {', '.join(DATASETS)})")
    for g in generators:
        if g not in GENERATORS:
            raise SystemExit(f"unknown generator {g!r} (known: {', '.join(GENERATORS)})")
    paths = {"adult": a.adult, "taiwan": a.taiwan}
    out = []
    for dataset in datasets:
        for gen in generators:
            options = generator_options(gen, a)
            for i, eps in enumerate(epsilons):
                out.append({"dataset": dataset, "generator": gen, "epsilon": eps, "delta": a.delta, "rows": a.rows,
                            "paths": paths, "options": options, "audit": not a.no_audit, "one_run": a.one_run,
                            "twin": gen in DEEP and i == 0})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adult", default=str(SHARED / "adult" / "adult-train.csv"))
    ap.add_argument("--taiwan", default=str(SHARED / "taiwan_credit_default" / "UCI_Credit_Card.csv"))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--epsilons", default="1,3,10")
    ap.add_argument("--delta", type=float, default=DELTA)
    ap.add_argument("--rows", type=int, default=None, help="subsample the source to N rows before the split (smoke runs)")
    ap.add_argument("--epochs", type=int, default=None, help="deep generators' epochs (default: each generator's own)")
    ap.add_argument("--batch-size", type=int, default=None, help="deep generators' batch size (default: their own)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="deep generators' device")
    ap.add_argument("--time-limit", type=float, default=None, help="deep generators' time_limit_s (default: none)")
    ap.add_argument("--aim-time-limit", type=float, default=60.0, help="AIM's time_limit_s (seconds; 0: none)")
    ap.add_argument("--aim-max-rounds", type=int, default=None, help="AIM's max_rounds (default: none)")
    ap.add_argument("--no-audit", action="store_true", help="skip fidelity, utility and membership audits")
    ap.add_argument("--one-run", action="store_true",
                    help="also run the one-run audit (refits the generator once: expensive for deep generators)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "deep_tabular.json"))
    a = ap.parse_args()

    configs = plan(a)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    machine["versions"] = _versions()
    machine["devices"] = _devices()
    doc: dict[str, Any] = {
        "benchmark": "deep tabular generators vs MST/AIM",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "args": vars(a),
        "policy": "default",
        "delta": a.delta,
        "split_seed": SPLIT_SEED,
        "sample_seed": SAMPLE_SEED,
        "subsample_seed": SUBSAMPLE_SEED,
        "results": [],
    }
    rows: list[dict[str, Any]] = doc["results"]
    twin_speed: dict[tuple[str, str], float | None] = {}
    started = time.perf_counter()
    for i, cfg in enumerate(configs, 1):
        label = f"{cfg['dataset']} {cfg['generator']} eps={cfg['epsilon']:g}"
        row: dict[str, Any] = {k: cfg[k] for k in ("dataset", "generator", "epsilon", "delta", "rows", "options")}
        print(f"[{time.perf_counter() - started:7.1f}s] ({i}/{len(configs)}) {label}: start", file=sys.stderr, flush=True)
        res = in_process(cfg)
        row["result"] = res
        key = (cfg["dataset"], cfg["generator"])
        if cfg["twin"]:
            twin = in_process({**cfg, "mode": "twin"})
            row["twin"] = twin
            twin_speed[key] = twin.get("samples_per_second")
            if "error" in twin:
                print(f"{label} non-private twin: ERROR\n{twin['error']}", file=sys.stderr, flush=True)
        if "error" in res:
            row["error"] = res["error"]
            print(f"{label}: ERROR\n{res['error']}", file=sys.stderr, flush=True)
        else:
            row["figures"] = figures(res, twin_speed.get(key))
            print(f"[{time.perf_counter() - started:7.1f}s] ({i}/{len(configs)}) {label}: done in "
                  f"{res['total_s']:.1f}s, peak {res['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
        rows.append(row)
        doc["elapsed_s"] = time.perf_counter() - started
        out.write_text(json.dumps(doc, indent=2, default=str))
    doc["table"] = table(rows, a.delta, a.one_run)
    out.write_text(json.dumps(doc, indent=2, default=str))
    print(doc["table"])
    print(f"\nwrote {out} ({doc.get('elapsed_s', 0.0):.0f}s)")


if __name__ == "__main__":
    main()
