"""Benchmark (not a test): DP-SGD throughput of the deep generators by opacus grad-sample mode.

Per-sample gradients are what DP-SGD costs. For dpctgan and dpdiffusion this trains the same model
on the same Adult rows with opacus' ghost clipping (per-sample norms only), its hook-based
per-sample gradients, functorch's vmap per-sample gradients, and without DP (plain Adam, shuffled
batches), and reports records processed per second of training and the ratio to the non-DP twin
(issue 5's goal: >= 0.5). All configurations run one after the other in this process, so that the
ratios are measured on the same (shared, noisy) machine in the same minutes; the order is
interleaved over ``--repeats`` rounds and the median is reported.

    .venv/bin/python bench/dpsgd_modes.py [--adult ../shared/data/tabular/adult/adult-train.csv]
        [--rows 8000] [--epochs 2] [--batch-size 500] [--device cpu] [--repeats 3]
        [--out bench/results/dpsgd_modes.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

MODES = ("ghost", "hooks", "functorch", "nonprivate")
GENERATORS = ("dpctgan", "dpdiffusion")


def fit_once(generator: str, mode: str, train: Any, schema: Any, options: dict[str, Any]) -> float:
    """Records per second of training for one fit."""
    from privacy.generators.tabular.deep import diffusion, dpctgan
    from privacy.spend import PrivacySpend

    module = {"dpctgan": dpctgan, "dpdiffusion": diffusion}[generator]
    if mode == "nonprivate":
        fitted = module.fit_nonprivate(train, schema, **options)
    else:
        cls = {"dpctgan": dpctgan.DPCTGANGenerator, "dpdiffusion": diffusion.DPDiffusionGenerator}[generator]
        fitted = cls(grad_sample_mode=mode, **options).fit(train, schema, PrivacySpend(epsilon=3.0, delta=1e-9))
    return float(fitted.training_stats["samples_per_second"])


def main() -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adult", default=str(ROOT.parent / "shared" / "data" / "tabular" / "adult" / "adult-train.csv"))
    ap.add_argument("--rows", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--out", default=str(BENCH / "results" / "dpsgd_modes.json"))
    a = ap.parse_args()

    import torch
    from tabular_path import load_adult

    schema, _df, train, _holdout = load_adult(Path(a.adult))
    train = train.head(a.rows)
    options = {"epochs": a.epochs, "batch_size": a.batch_size, "device": a.device}
    gens = [g for g in a.generators.split(",") if g]
    runs: dict[tuple[str, str], list[float]] = {(g, m): [] for g in gens for m in MODES}
    for r in range(a.repeats):
        for g in gens:
            for m in MODES:
                t0 = time.perf_counter()
                sps = fit_once(g, m, train, schema, options)
                runs[(g, m)].append(sps)
                print(f"round {r + 1} {g} {m}: {sps:,.0f} records/s ({time.perf_counter() - t0:.1f}s)",
                      file=sys.stderr, flush=True)
    rows = []
    for g in gens:
        base = statistics.median(runs[(g, "nonprivate")])
        for m in MODES:
            med = statistics.median(runs[(g, m)])
            rows.append({"generator": g, "mode": m, "records_per_s": med, "ratio_to_nonprivate": med / base,
                         "all": runs[(g, m)]})
    print(f"\nAdult, {train.height} training rows, {a.epochs} epochs, batch {a.batch_size}, device {a.device}, "
          f"torch threads {torch.get_num_threads()}, median of {a.repeats}\n")
    print("| generator | grad-sample mode | records/s | ratio to non-DP |")
    print("| --- | --- | ---: | ---: |")
    for row in rows:
        print(f"| {row['generator']} | {row['mode']} | {row['records_per_s']:,.0f} | {row['ratio_to_nonprivate']:.2f} |")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(a), "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
