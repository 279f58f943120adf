"""The report's methods appendix: what each audit does, its parameters, its references, and the
software that ran it.

The parameters are read from the audit document itself (every scalar setting an audit recorded
in its metrics' details), so the appendix describes the run that produced the figures, not a
default. The method texts are per audit and data kind.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Method:
    title: str
    text: str
    references: tuple[str, ...]


_DCR_REFS = (
    "Platzer, M. and Reutterer, T. (2021). Holdout-based empirical assessment of mixed-type synthetic data. "
    "Frontiers in Big Data 4.",
    "Gower, J. C. (1971). A general coefficient of similarity and some of its properties. Biometrics 27(4).",
)
_GAME_REFS = (
    "Stadler, T., Oprisanu, B. and Troncoso, C. (2022). Synthetic data: anonymisation groundhog day. USENIX "
    "Security.",
    "Houssiau, F. et al. (2022). TAPAS: a toolbox for adversarial privacy auditing of synthetic data. NeurIPS "
    "Workshop on Synthetic Data for Empowering ML Research.",
    "Kairouz, P., Oh, S. and Viswanath, P. (2015). The composition theorem for differential privacy. ICML.",
    "Clopper, C. J. and Pearson, E. S. (1934). The use of confidence or fiducial limits illustrated in the case of "
    "the binomial. Biometrika 26(4).",
)
_ONE_RUN_REFS = (
    "Steinke, T., Nasr, M. and Jagielski, M. (2023). Privacy auditing with one (1) training run. NeurIPS.",
)
_ANONYMETER_REFS = (
    "Giomi, M., Boenisch, F., Wehmeyer, C. and Tasnádi, B. (2023). A unified framework for quantifying privacy risk "
    "in synthetic data. Proceedings on Privacy Enhancing Technologies 2023(2).",
    "Article 29 Working Party (2014). Opinion 05/2014 on anonymisation techniques (singling out, linkability, "
    "inference).",
)

METHODS: dict[tuple[str, str], Method] = {
    ("*", "protocol"): Method(
        "Audit protocol",
        "Records which membership-attack profile ran (fast: distance to closest record, the density-ratio attack "
        "and the one-run audit; thorough: adds the privacy game with shadow models) against the profile the policy "
        "requires. An audit with a weaker profile than required fails the gate.",
        ()),
    ("tabular", "membership"): Method(
        "Distance to closest record and exact copies",
        "For each synthetic row, the nearest real row by Gower's distance (numeric columns scaled by the schema's "
        "public range, categories 0 when equal and 1 otherwise), among an equally large sample of the training "
        "split and of the holdout split. The share of synthetic rows nearer a training row is 0.5 for a generator "
        "that did not memorise its training rows; the worst of the full column set and random column subsets is "
        "gated. The exact-copy check compares the share of synthetic rows identical to a training row with the share "
        "identical to a holdout row.",
        _DCR_REFS),
    ("sequential", "membership"): Method(
        "Distance to closest entity and exact copies",
        "As for tables, with whole entities for rows: the distance between two entities is a Gower distance over "
        "their static columns plus a normalised edit distance over their events. The interval comes from "
        "permutations of the real entities between the two sides (simultaneous over the column sets), because "
        "many synthetic entities can share a nearest real entity.",
        _DCR_REFS),
    ("graph", "membership"): Method(
        "Edge membership attack",
        "Scores a real node pair by whether it is linked in the synthetic graph and by its Adamic-Adar index there, "
        "and measures how well the score tells training edges from held-out real edges (each real edge was held out "
        "by its own coin) as ROC AUC with a stratified bootstrap interval, with TPR at low FPR. The DP check compares "
        "the AUC with the largest an edge-level (epsilon, delta) guarantee allows.",
        ("Adamic, L. A. and Adar, E. (2003). Friends and neighbors on the Web. Social Networks 25(3).",
         *_GAME_REFS[2:3])),
    ("*", "domias"): Method(
        "Density-ratio membership attack (DOMIAS)",
        "Scores each candidate by the log ratio of a density fitted on the synthetic data to one fitted on reference "
        "real data (other holdout rows), so that a generator that overfits its training rows shows up as excess "
        "synthetic density around them. Members are training rows, non-members held-out rows; ROC AUC with a "
        "stratified bootstrap interval, TPR at FPR 1% and 10% with Clopper-Pearson intervals. The DP check "
        "compares the AUC's lower end with e^eps/(1+e^eps)+delta, the largest AUC any attack can have against the "
        "claimed guarantee.",
        ("van Breugel, B., Sun, H., Qian, Z. and van der Schaar, M. (2023). Membership inference attacks against "
         "synthetic data through overfitting detection. AISTATS.",)),
    ("*", "one_run"): Method(
        "One-run privacy audit",
        "Refits the run's generator, with its options and its (epsilon, delta), on held-out records in which "
        "canaries are included by independent fair coins; the attack guesses the inclusion of the canaries it is "
        "most and least confident about, and the number of correct guesses gives a 95% lower bound on epsilon. A "
        "bound above the claimed epsilon proves the claim false (a bug in the generator or its accounting).",
        _ONE_RUN_REFS),
    ("*", "shadow_game"): Method(
        "Privacy game with shadow models",
        "Picks target records (the most isolated held-out records and random ones), refits the run's generator many "
        "times on reference data with each target in by a fair coin, and trains an attack per target on the "
        "synthetic outputs' features to tell 'in' from 'out'. Reported: the pooled AUC (gated), per-target AUCs, "
        "TPR at FPR 1%, and an empirical epsilon lower bound (per-target Clopper-Pearson with Bonferroni over "
        "targets, and a pooled one-run bound), which must not exceed the claimed epsilon.",
        _GAME_REFS + _ONE_RUN_REFS),
    ("*", "anonymeter"): Method(
        "Anonymeter: singling out, linkability, inference",
        "Attacks built from the synthetic data are run against the real training rows and, as a control, against "
        "held-out rows the generator never saw; the risk is the excess success on training rows, normalised, with a "
        "95% interval from the number of attacks evaluated. Singling out: predicates that isolate one record "
        "(single rare values, and combinations of columns). Linkability: re-joining two halves of a record's columns "
        "through the same nearest synthetic record. Inference: guessing a sensitive column from the others via the "
        "nearest synthetic record (worst sensitive column). Train, control and synthetic samples have equal size.",
        _ANONYMETER_REFS),
    ("tabular", "fidelity"): Method(
        "Fidelity (SDMetrics)",
        "SDMetrics' QualityReport (column shapes: KS complement for numeric and TV complement for categorical "
        "columns; column pair trends: correlation and contingency similarity) and DiagnosticReport (data validity "
        "and structure), with metadata built from the public schema, comparing the synthetic data with the real "
        "training split. The report's column plots bin every column on the schema's public cells; the pair-trend "
        "heat map is the difference of Cramér's V over the same cells.",
        ("DataCebo (2024). SDMetrics: metrics for synthetic data evaluation. https://docs.sdv.dev/sdmetrics",)),
    ("sequential", "fidelity"): Method(
        "Sequence fidelity",
        "Compares synthetic with real training entities: event and static column marginals, events per entity, "
        "gaps between events, transitions between consecutive states (total variation distance of the next-state "
        "distributions weighted by how often each state occurs), lag-1 autocorrelation, and a classifier trained "
        "to tell real from synthetic entities (AUC near 0.5 is best).",
        ("Esteban, C., Hyland, S. L. and Rätsch, G. (2017). Real-valued (medical) time series generation with "
         "recurrent conditional GANs. arXiv:1706.02633.",)),
    ("graph", "fidelity"): Method(
        "Graph fidelity",
        "Compares the synthetic graph with the real training graph: degree distributions (KS statistic and earth "
        "mover's distance), average clustering and transitivity, triangles, degree assortativity, shortest-path "
        "lengths from seeded sources, modularity of a seeded Louvain partition, the top adjacency eigenvalues, "
        "connected components, and node attributes when the schema has them. Each becomes a similarity in [0, 1]; "
        "their mean is gated.",
        ("Newman, M. E. J. (2002). Assortative mixing in networks. Physical Review Letters 89(20).",
         "Blondel, V. D. et al. (2008). Fast unfolding of communities in large networks. J. Stat. Mech.",
         "Watts, D. J. and Strogatz, S. H. (1998). Collective dynamics of 'small-world' networks. Nature 393.")),
    ("*", "utility"): Method(
        "Utility: train on synthetic, test on real",
        "The same model is trained once on the real training split and once on the synthetic data, and both are "
        "tested on the real holdout split; the ratio of their ROC AUCs (one-vs-rest averaged over classes) is "
        "gated. For sequences, per-entity features predict the target.",
        ("Esteban, C., Hyland, S. L. and Rätsch, G. (2017). Real-valued (medical) time series generation with "
         "recurrent conditional GANs. arXiv:1706.02633.",)),
}


def method_for(kind: str, audit: str) -> Method | None:
    return METHODS.get((kind, audit)) or METHODS.get(("*", audit))


def parameters_of(result: dict[str, Any]) -> dict[str, str]:
    """Every scalar setting an audit recorded in its metrics' details (the first value of each key).

    Figures that are results rather than settings are skipped when they are the metric's own value;
    what remains are counts, seeds, methods and intervals' definitions as the audit recorded them.
    """
    out: dict[str, str] = {}
    for m in result.get("metrics") or []:
        for key, value in (m.get("details") or {}).items():
            if key in out or key == "roc" or isinstance(value, (dict, list)):
                continue
            if isinstance(value, float):
                out[key] = f"{value:.6g}"
            elif value is not None:
                out[key] = str(value)
    return out


#: the libraries whose versions decide the audit figures and the generators
LIBRARIES = ("synthgate", "numpy", "scipy", "pandas", "polars", "pyarrow", "scikit-learn", "sdmetrics", "anonymeter",
             "smartnoise-synth", "mbi", "opendp", "opacus", "torch", "networkx", "numba", "plotly", "cryptography")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that produced the figures ("not installed" otherwise)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
