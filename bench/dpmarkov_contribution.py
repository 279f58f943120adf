"""Benchmark: dpmarkov's per-entity contribution bounding (raw counts vs L2 clipping).

For each dataset (the whole of pbcseq: 312 patients, max_events 16; the whole Berka slice: 1,229
accounts with a static table, max_events 64), each epsilon (1 and 4, delta 1e-6) and each
contribution setting, dpmarkov (order 1) is fitted on all entities several times. The DP noise
comes from OpenDP's samplers (OS entropy) and cannot be seeded: every repetition is a fresh noise
draw; the repetition index seeds the sampling only. Settings:

- ``counts``: each entity's raw counts (L2 sensitivity max_events - 1, or max_events per column);
- ``l2 x0.5``, ``l2 x2``: each entity's count vector of each table clipped to L2 norm
  ``clip = factor * sqrt(max_events)`` (one number for every table);
- ``l2 default``: ``clip=None``, the default rule (sqrt(max_events - 1) for transitions and gaps,
  sqrt(max_events) for event columns).

Figures, all against the real (whole, training) data:

- ``trans TV``: sum over states s of P_real(s as previous state) x TV(P_model(. | s), P_real(. | s)),
  from the fitted transition matrix;
- ``gap TV``: the same for P(gap bin | state); ``events TV``: the same for P(cell | state), mean
  over the non-state event columns;
- ``len KS``: Kolmogorov-Smirnov distance between real and synthetic sequence lengths (as many
  synthetic entities as real ones);
- ``bias``: the transition TV of the noise-free clipped table (what L2 clipping costs at infinite
  epsilon; 0 for counts).

    .venv/bin/python bench/dpmarkov_contribution.py                    # both datasets, eps 1 and 4, 5 reps
    .venv/bin/python bench/dpmarkov_contribution.py --datasets pbcseq --reps 3 --epsilons 1

The table prints mean and standard deviation over repetitions; bench/results/dpmarkov_contribution.json
(gitignored) holds every repetition.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from privacy.generators.sequential import dpmarkov as dm  # noqa: E402
from privacy.schema import Schema  # noqa: E402
from privacy.sequences import SequenceData, conform_sequences  # noqa: E402
from privacy.spend import PrivacySpend  # noqa: E402
from privacy.table import read_raw  # noqa: E402

DATASETS: dict[str, dict[str, str | None]] = {
    "pbcseq": {"events": "bench/data/pbcseq/pbcseq.csv", "statics": None, "schema": "bench/data/pbcseq/schema.yaml"},
    "berka": {"events": "bench/data/berka/transactions.csv", "statics": "bench/data/berka/accounts.csv",
              "schema": "bench/data/berka/schema.yaml"},
}


def load(name: str) -> tuple[SequenceData, Schema]:
    ds = DATASETS[name]
    schema = Schema.load(ROOT / str(ds["schema"]))
    statics = read_raw(ROOT / str(ds["statics"])) if ds["statics"] else None
    data, _ = conform_sequences(read_raw(ROOT / str(ds["events"])), statics, schema)
    return data, schema


def settings(max_events: int, factors: list[float]) -> list[tuple[str, dict[str, Any]]]:
    """(label, generator options): counts, then l2 with each clip factor (1: the default rule)."""
    out: list[tuple[str, dict[str, Any]]] = [("counts", {"contribution": "counts"})]
    for f in factors:
        if f == 1:
            out.append(("l2 default", {"contribution": "l2"}))
        else:
            out.append((f"l2 x{f:g}", {"contribution": "l2", "clip": f * math.sqrt(max_events)}))
    return out


def weighted_tv(model_rows: np.ndarray, real_counts: np.ndarray) -> float:
    """sum_s P_real(s) TV(model(. | s), real(. | s)) over the states with real mass."""
    real = np.asarray(real_counts, dtype=np.float64).reshape(-1, real_counts.shape[-1])
    model = np.asarray(model_rows, dtype=np.float64).reshape(real.shape)
    mass = real.sum(axis=1)
    used = mass > 0
    p_real = real[used] / mass[used, None]
    tv = 0.5 * np.abs(model[used] - p_real).sum(axis=1)
    return float((mass[used] / mass.sum() * tv).sum())


def rows_of(table: np.ndarray) -> np.ndarray:
    """Row-normalised table (uniform where a row has no mass)."""
    t = np.asarray(table, dtype=np.float64)
    s = t.sum(axis=-1, keepdims=True)
    return np.where(s > 0, t / np.where(s > 0, s, 1.0), 1.0 / t.shape[-1])


def length_ks(real: np.ndarray, syn: np.ndarray, m: int) -> float:
    grid = np.arange(1, m + 1)
    a = np.searchsorted(np.sort(real), grid, side="right") / real.size
    b = np.searchsorted(np.sort(syn), grid, side="right") / max(syn.size, 1)
    return float(np.abs(a - b).max())


def real_tables(data: SequenceData, schema: Schema, options: dict[str, Any]) -> dict[str, np.ndarray]:
    """The exact tables (raw counts, or clipped fixed-point counts / resolution) of a setting."""
    gen = dm.DPMarkovGenerator(**options)
    lay = gen.layout(schema)
    _, meas, _ = dm.plan_budget(lay, 1.0, dict(gen.shares), contribution=gen.contribution, clip=gen.clip)
    tables = dm.count_tables(dm.encode_data(data, lay), lay, meas)
    return {m.name: tables[m.name] / m.resolution for m in meas}


def one_fit(data: SequenceData, schema: Schema, options: dict[str, Any], eps: float, delta: float, rep: int,
            real: dict[str, np.ndarray]) -> dict[str, Any]:
    t0 = time.perf_counter()
    fitted = dm.DPMarkovGenerator(**options).fit(data, schema, PrivacySpend(epsilon=eps, delta=delta))
    fit_s = time.perf_counter() - t0
    lay = fitted.layout
    others = [c.name for c in lay.others]
    p = fitted.card.parameters
    syn = fitted.sample(data.n_entities, seed=rep)
    assert fitted.transitions is not None and fitted.gaps is not None
    return {
        "trans_tv": weighted_tv(fitted.transitions, real["transitions"]),
        "gap_tv": weighted_tv(fitted.gaps, real["gaps"]),
        "events_tv": float(np.mean([weighted_tv(q, real[f"events:{c}"]) for q, c in zip(fitted.others, others)])),
        "events_tv_per_column": {c: weighted_tv(q, real[f"events:{c}"]) for q, c in zip(fitted.others, others)},
        "length_ks": length_ks(data.lengths(), syn.lengths(), schema.seq.max_events),
        "sigma_transitions": p["sigmas"]["transitions"],
        "sigmas": p["sigmas"], "sensitivities": p["sensitivities"], "clip": p["clip"],
        "mechanisms": p["mechanisms"], "backed_off_rows": p["backed_off_rows"],
        "rho_used": p["rho_used"], "rho": p["rho"], "fit_s": round(fit_s, 2),
    }


KEYS = (("trans TV", "trans_tv"), ("gap TV", "gap_tv"), ("events TV", "events_tv"), ("len KS", "length_ks"))


def summarise(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    return {k: [float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs]))] for _, k in KEYS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 4.0])
    ap.add_argument("--delta", type=float, default=1e-6)
    ap.add_argument("--reps", type=int, default=5, help="fresh noise draws per setting (sampling seed = index)")
    ap.add_argument("--clip-factors", nargs="+", type=float, default=[0.5, 1.0, 2.0],
                    help="l2 clips as multiples of sqrt(max_events); 1 means the default rule (clip=None)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "dpmarkov_contribution.json"))
    a = ap.parse_args()

    loaded = {name: load(name) for name in a.datasets}
    grid: list[dict[str, Any]] = []
    for name, (data, schema) in loaded.items():
        raw = real_tables(data, schema, {"contribution": "counts"})
        for label, options in settings(schema.seq.max_events, a.clip_factors):
            clipped = real_tables(data, schema, options)
            bias = weighted_tv(rows_of(clipped["transitions"]), raw["transitions"])
            for eps in a.epsilons:
                grid.append({"dataset": name, "setting": label, "options": options, "epsilon": eps,
                             "bias_trans_tv": bias, "runs": [], "real": raw})
    started = time.perf_counter()
    for rep in range(a.reps):  # repetitions outermost: a cut-short run stays balanced
        for cell in grid:
            data, schema = loaded[cell["dataset"]]
            print(f"[{time.perf_counter() - started:6.0f} s] rep {rep} {cell['dataset']} eps={cell['epsilon']:g} "
                  f"{cell['setting']}", file=sys.stderr, flush=True)
            cell["runs"].append(one_fit(data, schema, cell["options"], cell["epsilon"], a.delta, rep, cell["real"]))

    head = ["dataset", "eps", "setting", "sigma trans", "bias", *(h for h, _ in KEYS)]
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    rows = []
    for cell in grid:
        s = summarise(cell["runs"])
        print(" | ".join([cell["dataset"], f"{cell['epsilon']:g}", cell["setting"],
                          f"{cell['runs'][0]['sigma_transitions']:.1f}", f"{cell['bias_trans_tv']:.3f}",
                          *(f"{s[k][0]:.3f} ± {s[k][1]:.3f}" for _, k in KEYS)]))
        rows.append({k: v for k, v in cell.items() if k != "real"} | {"summary": s})
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "args": vars(a), "entities": {n: d.n_entities for n, (d, _) in
                                                                           loaded.items()}}, indent=2, default=str))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
