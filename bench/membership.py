"""Benchmark (not a test): the membership audits on Adult and German credit (issue 4).

For MST and AIM at each epsilon, and for the non-private baselines of ``audits.baselines`` (a copy of
the training rows, a noisy copy, a Gaussian copula, synthpop-style CART), each fitted on the training split: every
membership audit's figures (DCR share and exact-match margin, the DOMIAS density-ratio attack, the
one-run epsilon lower bound, the shadow-model game), the wall time of the fit and of each audit,
which gate checks of the default policy fail (and whether a failure refutes the DP claim), and peak
memory. The baselines claim no guarantee; they are audited as if they claimed epsilon 1, so that the
table shows whether the DP-claim checks fire. Each configuration runs in its own (spawned) process
so that peak RSS is its own. Progress goes to stderr; a markdown table to stdout; everything, with
machine information, to JSON (rewritten after every configuration, so a stopped run keeps its rows).

Targets (issue 4): the fast profile's four audits together under 2 minutes on 2 cores on Adult; the
thorough profile under 30 minutes. The fast profile runs for every configuration; the thorough one
only for those named by ``--thorough-only`` (``gen`` or ``gen:eps``, comma-separated; ``all``;
``none``), because the thorough game refits the generator 48 times.

    .venv/bin/python bench/membership.py [--adult ../shared/data/tabular/adult/adult-train.csv]
        [--datasets adult,german] [--generators mst,aim,copy,noisy-copy,copula,cart] [--epsilons 1,4]
        [--profiles fast,thorough] [--thorough-only mst:1] [--aim-time-limit 60] [--aim-max-rounds N]
        [--copula-max-rows 5000] [--out bench/results/membership.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import queue
import resource
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

DELTA = 1e-9
#: the claimed epsilon the non-private baselines are audited against
BASELINE_CLAIM = 1.0
#: the split and the synthetic sample are seeded: a benchmark may fix what a release draws at random
SPLIT_SEED = 0
SAMPLE_SEED = 1
BASELINES = ("copy", "noisy-copy", "copula", "cart")
GENERATORS = ("mst", "aim", *BASELINES)
AUDIT_NAMES = ("membership", "domias", "one_run", "shadow_game")
GERMAN_DIR = BENCH / "data" / "german_credit"
#: issue 4's targets for the four membership audits together (seconds), per profile, on Adult
TARGET_S = {"fast": 120.0, "thorough": 1800.0}
#: short labels for failed gate checks in the table
SHORT = {
    "dcr_share": "dcr",
    "exact_match_train_minus_holdout": "exact",
    "domias_auc": "domias",
    "domias_auc_dp_check": "domias-dp",
    "one_run_epsilon_lb": "1run-eps",
    "game_auc": "game-auc",
    "game_tpr_at_fpr_1pct": "game-tpr",
    "game_epsilon_lb": "game-eps",
    "game_auc_dp_check": "game-auc-dp",
}


# ----------------------------------------------------------------------------- data


def load_dataset(name: str, adult_path: str, holdout_fraction: float):  # type: ignore[no-untyped-def]
    """(schema, train, holdout) for ``adult`` or ``german``, split with the policy's holdout fraction."""
    from privacy.schema import Schema
    from privacy.split import train_holdout
    from privacy.table import conform, read_raw

    if name == "adult":
        sys.path.insert(0, str(BENCH))
        from tabular_path import load_adult

        schema, df, _train, _holdout = load_adult(Path(adult_path))
    elif name == "german":
        schema = Schema.load(GERMAN_DIR / "schema.yaml")
        df, _ = conform(read_raw(GERMAN_DIR / "germancredit.csv"), schema)
    else:
        raise ValueError(f"unknown dataset {name!r} (known: adult, german)")
    train, holdout = train_holdout(df, holdout_fraction, seed=SPLIT_SEED)
    return schema, train, holdout


def make_refitter(generator: str, epsilon: float, aim_options: dict[str, Any]) -> Any:
    from audits.baselines import CARTRefitter, CopyRefitter, GaussianCopulaRefitter, NoisyCopyRefitter
    from privacy.generators.registry import RegisteredRefitter

    if generator == "copy":
        return CopyRefitter()
    if generator == "noisy-copy":
        return NoisyCopyRefitter()
    if generator == "copula":
        return GaussianCopulaRefitter()
    if generator == "cart":
        return CARTRefitter()
    options = aim_options if generator == "aim" else {}
    return RegisteredRefitter(name=generator, options=dict(options), epsilon=epsilon, delta=DELTA)


# ----------------------------------------------------------------------------- one configuration


def _log(label: str, started: float, msg: str) -> None:
    print(f"[{time.perf_counter() - started:7.1f}s] {label}: {msg}", file=sys.stderr, flush=True)


def _peak_mb() -> float:
    """This process's own peak RSS since it started (Linux VmHWM).

    Not ``ru_maxrss``: a spawned process is forked from the parent before it execs, and Linux carries
    the parent's resident size at the fork into the child's ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _tree_rss_mb(root: int) -> float:
    """Current RSS of ``root`` and all its descendants (Linux /proc), in MB; 0 where unreadable."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            parents[int(d.name)] = int(fields[1])
            rss[int(d.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(rss.get(pid, 0) for pid in tree) / 2**20


class TreeSampler(threading.Thread):
    """Samples the RSS of a process tree (a configuration and its shadow-fit workers) every ``every`` s."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak_mb = pid, every, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.peak_mb = max(self.peak_mb, _tree_rss_mb(self.pid))
            except OSError:
                pass
            self._stop_event.wait(self.every)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak_mb


def run_config(args: dict[str, Any], q: Any) -> None:
    """Child process: fit, run the four membership audits, put one result dict on ``q``."""
    try:
        q.put(_run_config(args))
    except BaseException:  # noqa: B036 - reported to the parent, which carries on
        q.put({"error": traceback.format_exc(), "peak_mb": _peak_mb()})


def _run_config(args: dict[str, Any]) -> dict[str, Any]:
    from audits.context import AuditContext, Claim
    from audits.domias import run_domias
    from audits.membership import run_membership
    from audits.one_run import run_one_run
    from audits.shadow_game import run_shadow_game
    from policies import load_policy

    started = time.perf_counter()
    label = f"{args['dataset']} {args['generator']} eps={args['epsilon']:g} {args['profile']}"
    policy = load_policy("default")
    schema, train, holdout = load_dataset(args["dataset"], args["adult"], policy.holdout_fraction)
    _log(label, started, f"loaded: {train.height} train / {holdout.height} holdout rows")
    refitter = make_refitter(args["generator"], args["epsilon"], args["aim_options"])

    t0 = time.perf_counter()
    synthetic = refitter.fit_sample(train, schema, train.height, SAMPLE_SEED)
    fit_s = time.perf_counter() - t0
    fit_peak = _peak_mb()
    _log(label, started, f"fit and sample: {fit_s:.1f}s")

    ctx = AuditContext(claim=Claim(epsilon=args["epsilon"], delta=DELTA), refitter=refitter,
                       profile=args["profile"], target=schema.target,
                       progress=lambda msg: _log(label, started, msg))
    audits = {"membership": run_membership, "domias": run_domias, "one_run": run_one_run,
              "shadow_game": run_shadow_game}
    results: dict[str, Any] = {}
    for name in AUDIT_NAMES:
        t0 = time.perf_counter()
        try:
            r = audits[name](train, holdout, synthetic, schema, policy, ctx)
            secs = time.perf_counter() - t0
            results[name] = {"seconds": secs, "notes": list(r.notes), "metrics": [m.to_dict() for m in r.metrics]}
        except Exception:
            secs = time.perf_counter() - t0
            results[name] = {"seconds": secs, "error": traceback.format_exc(), "metrics": []}
        _log(label, started, f"{name}: {secs:.1f}s" + (" (error)" if "error" in results[name] else ""))

    # the shadow game's loky workers idle for minutes before they exit, and this process would wait
    # for them at its own exit: shut them down now (only if the game started any)
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)
    return {
        "rows": {"train": train.height, "holdout": holdout.height, "synthetic": synthetic.height},
        "fit_s": fit_s,
        "audits": results,
        "fit_peak_mb": fit_peak,
        "peak_mb": _peak_mb(),
        "total_s": time.perf_counter() - started,
        "settings": policy.audit.membership[args["profile"]].model_dump(),  # type: ignore[index]
    }


def in_process(args: dict[str, Any], target: Any = None) -> dict[str, Any]:
    """Run one configuration (``target(args, queue)``, default ``run_config``) in a spawned process;
    an error or a killed child becomes ``{"error": ...}``."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target or run_config, args=(args, q))
    p.start()
    sampler = TreeSampler(p.pid)  # type: ignore[arg-type]
    sampler.start()
    res: dict[str, Any] | None = None
    while res is None:
        try:
            res = q.get(timeout=5)
        except queue.Empty:
            if not p.is_alive():
                try:
                    res = q.get(timeout=5)
                except queue.Empty:
                    res = {"error": f"child process ended with exit code {p.exitcode} and no result"}
    p.join()
    res["tree_peak_mb"] = sampler.stop()
    return res


# ----------------------------------------------------------------------------- figures


def _metric(res: dict[str, Any], audit: str, name: str) -> dict[str, Any] | None:
    for m in res.get("audits", {}).get(audit, {}).get("metrics", []):
        if m["name"] == name:
            return m
    return None


def figures(res: dict[str, Any]) -> dict[str, Any]:
    """The summary figures of one configuration's result (None where an audit did not produce one)."""
    def val(m: dict[str, Any] | None) -> Any:
        return None if m is None else m["value"]

    def ci(m: dict[str, Any] | None) -> Any:
        return None if m is None else m["interval"]

    dcr = _metric(res, "membership", "dcr_share")
    exact = _metric(res, "membership", "exact_match_train_minus_holdout")
    dom = _metric(res, "domias", "domias_auc")
    one = _metric(res, "one_run", "one_run_epsilon_lb")
    gauc = _metric(res, "shadow_game", "game_auc")
    worst = _metric(res, "shadow_game", "game_worst_target_auc")
    gtpr = _metric(res, "shadow_game", "game_tpr_at_fpr_1pct")
    geps = _metric(res, "shadow_game", "game_epsilon_lb")
    failed, dp_failed = [], False
    for audit, r in res.get("audits", {}).items():
        for m in r.get("metrics", []):
            if m["role"] == "gate" and m["passed"] is False:
                failed.append(f"{audit}:{m['name']}")
                dp_failed = dp_failed or m["kind"] == "dp_claim"
    audit_s = {a: r["seconds"] for a, r in res.get("audits", {}).items()}
    return {
        "fit_s": res.get("fit_s"),
        "audit_s": audit_s,
        "membership_suite_s": sum(audit_s.values()) if audit_s else None,
        "dcr_share": val(dcr), "dcr_interval": ci(dcr),
        "exact_match_margin": val(exact),
        "domias_auc": val(dom), "domias_interval": ci(dom),
        "domias_tpr_at_1pct": val(_metric(res, "domias", "domias_tpr_at_fpr_1pct")),
        "domias_tpr_at_10pct": val(_metric(res, "domias", "domias_tpr_at_fpr_10pct")),
        "one_run_epsilon_lb": val(one),
        "one_run_max_resolvable": None if one is None else one["details"].get("max_resolvable_epsilon"),
        "one_run_correct": None if one is None else one["details"].get("correct"),
        "one_run_guesses": None if one is None else one["details"].get("guesses"),
        "game_auc": val(gauc), "game_interval": ci(gauc),
        "game_worst_target_auc": val(worst),
        "game_tpr_at_1pct": val(gtpr),
        "game_epsilon_lb": val(geps),
        "game_max_resolvable": None if geps is None else geps["details"].get("max_resolvable_epsilon"),
        "failed_checks": failed,
        "dp_claim_failed": dp_failed,
        "audit_errors": [a for a, r in res.get("audits", {}).items() if "error" in r],
        "peak_mb": res.get("peak_mb"),
        "tree_peak_mb": res.get("tree_peak_mb"),
    }


# ----------------------------------------------------------------------------- table


def _f(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ci(x: Any, interval: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if not interval:
        return _f(x, digits)
    return f"{x:.{digits}f} [{interval[0]:.{digits}f},{interval[1]:.{digits}f}]"


def table(rows: list[dict[str, Any]]) -> str:
    head = ["data", "gen", "eps", "prof", "fit s", "dcr s", "dom s", "1run s", "game s", "suite s",
            "DCR", "EM", "DOMIAS AUC", "TPR@1/10%", "1run eps (max; c/g)", "game AUC", "worst", "gTPR@1%",
            "game eps (max)", "failed", "DP fail", "peak MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r.get("figures")
        eps = f"{r['epsilon']:g}" + ("*" if r["generator"] in BASELINES else "")
        if s is None:
            why = r.get("skipped") or (r.get("error") or "error").strip().splitlines()[-1]
            cells = [r["dataset"], r["generator"], eps, r["profile"], f"not run: {why}"] + [""] * (len(head) - 5)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        a = s["audit_s"]
        game_ran = s["game_auc"] is not None
        cells = [
            r["dataset"], r["generator"], eps, r["profile"],
            _f(s["fit_s"], 1),
            *(_f(a.get(k), 1) for k in AUDIT_NAMES),
            _f(s["membership_suite_s"], 1),
            _f(s["dcr_share"]),
            _f(s["exact_match_margin"], 4),
            _ci(s["domias_auc"], s["domias_interval"]),
            f"{_f(s['domias_tpr_at_1pct'], 2)}/{_f(s['domias_tpr_at_10pct'], 2)}",
            "-" if s["one_run_epsilon_lb"] is None else
            f"{s['one_run_epsilon_lb']:.2f} ({_f(s['one_run_max_resolvable'], 2)}; "
            f"{s['one_run_correct']}/{s['one_run_guesses']})",
            _ci(s["game_auc"], s["game_interval"]) if game_ran else "-",
            _f(s["game_worst_target_auc"], 2),
            _f(s["game_tpr_at_1pct"], 2),
            "-" if s["game_epsilon_lb"] is None else f"{s['game_epsilon_lb']:.2f} ({_f(s['game_max_resolvable'], 2)})",
            (", ".join(SHORT.get(c.split(":", 1)[1], c) for c in s["failed_checks"]) or "none")
            + ("" if not s["audit_errors"] else f" (errors: {', '.join(s['audit_errors'])})"),
            "yes" if s["dp_claim_failed"] else "no",
            f"{s['peak_mb']:.0f}" + (f" (tree {s['tree_peak_mb']:.0f})"
                                     if (s["tree_peak_mb"] or 0) > s["peak_mb"] + 50 else ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        f"eps: the claimed epsilon (delta {DELTA:g}); * = a non-private baseline audited as if it claimed "
        f"epsilon {BASELINE_CLAIM:g}, so that the DP-claim checks (domias-dp, 1run-eps, game-eps, game-auc-dp) can fire.",
        "fit s: fit and sample on the training split. dcr/dom/1run/game s: wall time of each audit (1run and game "
        "include their shadow fits); suite s: the four together (issue 4 target on Adult: fast < 120 s on 2 cores, "
        "thorough < 1800 s).",
        "DCR: worst share of synthetic rows nearer train than holdout (gate <= 0.55). EM: exact-match share, "
        "train minus holdout (gate <= 0.005). DOMIAS AUC [95% interval] (gate: upper <= 0.60), TPR at FPR 1%/10%.",
        "1run eps: one-run epsilon lower bound (95%), the largest its canaries could show, correct/guesses. "
        "game: pooled AUC [interval], worst target's AUC, TPR at FPR 1%, epsilon lower bound (largest resolvable).",
        "failed: gate checks of the default policy that failed; DP fail: a failed check is of kind dp_claim "
        "(the DP claim is refuted). peak MB: the configuration's process's own peak RSS (VmHWM); tree: the "
        "peak total RSS of it and its workers (shadow fits), sampled every 0.5 s, shown where it is larger.",
    ]
    return "\n".join(lines + notes)


# ----------------------------------------------------------------------------- main


PACKAGES = ("numpy", "polars", "scikit-learn", "scipy", "joblib", "copulas", "smartnoise-synth", "mbi", "jax")


def _versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``packages`` (None where absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _machine() -> dict[str, Any]:
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "versions": _versions(),
    }


def _thorough_wanted(spec: str, generator: str, epsilon: float) -> bool:
    spec = spec.strip().lower()
    if spec in ("", "none"):
        return False
    if spec == "all":
        return True
    for item in spec.split(","):
        gen, _, eps = item.strip().partition(":")
        if gen != generator:
            continue
        if not eps or generator in BASELINES or float(eps) == epsilon:
            return True
    return False


def plan(a: argparse.Namespace) -> list[dict[str, Any]]:
    """The configurations to run, in order: per dataset, generator, epsilon, profile."""
    profiles = [p.strip() for p in a.profiles.split(",") if p.strip()]
    epsilons = [float(e) for e in a.epsilons.split(",") if e.strip()]
    aim_options: dict[str, Any] = {}
    if a.aim_time_limit:
        aim_options["time_limit_s"] = a.aim_time_limit
    if a.aim_max_rounds:
        aim_options["max_rounds"] = a.aim_max_rounds
    out = []
    for dataset in [d.strip() for d in a.datasets.split(",") if d.strip()]:
        for gen in [g.strip() for g in a.generators.split(",") if g.strip()]:
            if gen not in GENERATORS:
                raise SystemExit(f"unknown generator {gen!r} (known: {', '.join(GENERATORS)})")
            for eps in [BASELINE_CLAIM] if gen in BASELINES else epsilons:
                for profile in profiles:
                    if profile == "thorough" and not _thorough_wanted(a.thorough_only, gen, eps):
                        continue
                    out.append({"dataset": dataset, "generator": gen, "epsilon": eps, "profile": profile,
                                "adult": a.adult, "aim_options": aim_options if gen == "aim" else {}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adult", default=str(ROOT.parent / "shared" / "data" / "tabular" / "adult" / "adult-train.csv"))
    ap.add_argument("--datasets", default="adult,german")
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--epsilons", default="1,4", help="for mst and aim; the baselines are audited at a claim of 1")
    ap.add_argument("--profiles", default="fast,thorough")
    ap.add_argument("--thorough-only", default="mst:1",
                    help="configurations the thorough profile runs for: gen or gen:eps, comma-separated; all; none")
    ap.add_argument("--aim-time-limit", type=float, default=60.0,
                    help="AIM's time_limit_s (seconds; 0: none). Unbounded AIM takes over 10 minutes a fit on Adult")
    ap.add_argument("--aim-max-rounds", type=int, default=None, help="AIM's max_rounds (default: none)")
    ap.add_argument("--copula-max-rows", type=int, default=5000,
                    help="skip the Gaussian copula above this many training rows (its KDE marginals are quadratic "
                         "in the rows: about 150 s for 4,000 rows); 0: never skip")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "membership.json"))
    a = ap.parse_args()

    configs = plan(a)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "benchmark": "membership audits (issue 4)",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "args": vars(a),
        "policy": "default",
        "delta": DELTA,
        "baseline_claimed_epsilon": BASELINE_CLAIM,
        "split_seed": SPLIT_SEED,
        "sample_seed": SAMPLE_SEED,
        "results": [],
    }
    rows: list[dict[str, Any]] = doc["results"]
    started = time.perf_counter()
    train_rows: dict[str, int] = {}
    if a.copula_max_rows and any(c["generator"] == "copula" for c in configs):
        from policies import load_policy

        fraction = load_policy("default").holdout_fraction
        for dataset in {c["dataset"] for c in configs if c["generator"] == "copula"}:
            train_rows[dataset] = load_dataset(dataset, a.adult, fraction)[1].height
    for i, cfg in enumerate(configs, 1):
        label = f"{cfg['dataset']} {cfg['generator']} eps={cfg['epsilon']:g} {cfg['profile']}"
        row: dict[str, Any] = {k: cfg[k] for k in ("dataset", "generator", "epsilon", "profile", "aim_options")}
        if cfg["generator"] == "copula" and a.copula_max_rows and train_rows.get(cfg["dataset"], 0) > a.copula_max_rows:
            row["skipped"] = f"copula: {train_rows[cfg['dataset']]} training rows > --copula-max-rows {a.copula_max_rows}"
            print(f"[{time.perf_counter() - started:7.1f}s] ({i}/{len(configs)}) {label}: skipped", file=sys.stderr)
            rows.append(row)
            continue
        print(f"[{time.perf_counter() - started:7.1f}s] ({i}/{len(configs)}) {label}: start", file=sys.stderr, flush=True)
        res = in_process(cfg)
        row["result"] = res
        if "error" in res:
            row["error"] = res["error"]
            print(f"{label}: ERROR\n{res['error']}", file=sys.stderr, flush=True)
        else:
            row["figures"] = figures(res)
            print(f"[{time.perf_counter() - started:7.1f}s] ({i}/{len(configs)}) {label}: done in "
                  f"{res['total_s']:.1f}s, peak {res['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
        rows.append(row)
        doc["elapsed_s"] = time.perf_counter() - started
        out.write_text(json.dumps(doc, indent=2, default=str))
    doc["table"] = table(rows)
    out.write_text(json.dumps(doc, indent=2, default=str))
    print(doc["table"])
    print(f"\nwrote {out} ({doc.get('elapsed_s', 0.0):.0f}s)")


if __name__ == "__main__":
    main()
