"""The run's statement (what stewards sign) and the human documents of a bundle."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from release.canonical import canonical_json, sha256_hex

#: files of a run that the statement binds, by their names in the bundle
BOUND_FILES = ("synthetic.parquet", "synthetic.csv", "audit.json", "report.html")
#: a graph run's node table (every node, isolated ones included), bound when the run has one
GRAPH_FILES = ("synthetic-nodes.parquet", "synthetic-nodes.csv")


def file_digests(run_dir: Any) -> dict[str, str]:
    out = {}
    names = BOUND_FILES + tuple(n for n in GRAPH_FILES if (run_dir / n).exists())
    for name in names:
        out[name] = hashlib.sha256((run_dir / name).read_bytes()).hexdigest()
    return out


def statement_digest(statement: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(statement))


def _empirical_check(st: dict[str, Any]) -> list[str]:
    """The DP-claim checks of the gate, in words: what the attacks could and could not refute."""
    checks = [c for c in (st.get("gate") or {}).get("checks", []) if c.get("kind") == "dp_claim"]
    if not checks:
        return []
    parts = ", ".join(f"{c['name']} = {c['value']:.3g} (must stay <= {c['threshold']:.3g}: "
                      f"{'held' if c['passed'] else 'FAILED'})" for c in checks if c.get("value") is not None)
    return [
        f"- Empirical check of the claim: {parts}. An empirical epsilon lower bound is a correctness "
        "check with limited resolution, not a risk certificate; `audit.json` gives the largest bound each "
        "check's trial count could have shown.",
    ]


def _sequence_lines(st: dict[str, Any]) -> list[str]:
    """What the guarantee means for sequences: the entity, the event cap and truncation, the gaps."""
    seq = (st.get("schema") or {}).get("sequence")
    if not seq:
        return []
    order = seq["order"]
    rule = "first" if seq.get("truncate", "first") == "first" else "last"
    units = "days" if order.get("type") == "date" else "steps"
    return [
        f"- Unit of privacy: one entity (`{seq['entity']}`) and all its events. At most {seq['max_events']} events "
        f"per entity reach the generator: an entity with more keeps its {rule} {seq['max_events']} events in "
        f"`{order['column']}` order and the rest are dropped before training (a public rule from the schema). "
        f"Gaps between consecutive events are clipped to [{order['gap_min']}, {order['gap_max']}] {units} and "
        f"`{order['column']}` values to [{order['min']}, {order['max']}]. "
        "Everything an entity contributes is protected together, however many events it has.",
        "- Entity keys in the synthetic data are fresh numbers; they do not correspond to real keys.",
    ]


def _graph_lines(st: dict[str, Any]) -> list[str]:
    """What the guarantee means for graphs: the edge, the node set, what identifies a node."""
    g = (st.get("schema") or {}).get("graph")
    if not g:
        return []
    card = st.get("generator") or {}
    params = card.get("parameters") or {}
    kind = "directed" if g.get("directed") else "undirected"
    if g.get("unit") == "node":
        return _node_unit_lines(g)
    lines = [
        f"- Unit of privacy: one {kind} edge. Two source graphs that differ in a single edge lead to "
        "nearly the same distribution of releases; a relationship is protected, a person's whole set of "
        "relationships only as a group (group privacy: k edges cost about k times epsilon, with a delta "
        "that grows faster than k times delta, and k squared times rho for the zCDP parts), so a "
        "high-degree node's overall connectedness is not hidden.",
    ]
    if g.get("nodes") == "public":
        lines.append(
            "- The node set is public (declared by the steward in the schema: "
            + (f"ids 0 to {g['node_count'] - 1}" if g.get("node_count") else "the registered node table's ids")
            + "), so node ids in the synthetic graph are the real ids; which edges join them is synthetic. "
            "Which nodes exist is not protected by this release, by declaration."
        )
        if card.get("name") == "privgraph":
            lines.append(
                "- privgraph keeps node identities: each real node's community (chosen with DP) and its noisy "
                "degree inside it shape the synthetic edges at that node, so the release shows which public "
                "ids are well connected and which cluster together, at the resolution edge-level DP allows."
            )
    else:
        lines.append("- The number of nodes was estimated with part of the budget; node ids in the synthetic "
                     "graph are fresh and do not correspond to real nodes.")
    cap = params.get("max_degree")
    if cap:
        lines.append(f"- Degree cap {cap} (public): before the DP step the generator dropped the edges of "
                     "higher-degree nodes by a public rule (a fixed hash order of neighbours); one edge of the "
                     "source changes at most three edges after it, which the accounting pays for.")
    if g.get("self_loops") == "drop":
        lines.append("- Self-loops were dropped before training, as the schema says.")
    if g.get("duplicates") == "merge":
        lines.append("- Repeated edges were merged into one before training, as the schema says.")
    if (st.get("schema") or {}).get("columns"):
        lines.append("- Node attributes are synthetic: drawn for each node from a DP model of the attributes "
                     "and the degree class (see the generator card), not the node's real values; the unit "
                     "then also covers one node's attribute values.")
    return lines


def _node_unit_lines(g: dict[str, Any]) -> list[str]:
    """Node-level DP (``unit: node``): one node with all its edges, under the public degree bound."""
    cap = g.get("max_degree")
    lines = [
        f"- Unit of privacy: one node with all its edges. Two source graphs that differ in a single node "
        f"(added or removed together with all of its edges) lead to nearly the same distribution of "
        f"releases, so whether a person is in the graph, and all of their relationships, are protected. "
        f"This holds over graphs in which every node has at most {cap} edges (the schema's public "
        f"max_degree): a graph with a node above {cap} is refused at registration, before anything is "
        "charged or released.",
        "- Node ids in the synthetic graph are fresh and do not correspond to real nodes; the number of "
        "nodes is estimated with the budget (the sum of the noisy degree histogram).",
        "- Nodes are read from the edge file, so a node without edges is not part of the source.",
    ]
    if g.get("self_loops") == "drop":
        lines.append("- Self-loops were dropped before training, as the schema says.")
    if g.get("duplicates") == "merge":
        lines.append("- Repeated edges were merged into one before training, as the schema says.")
    return lines


def not_covered_lines(st: dict[str, Any]) -> list[str]:
    """The privacy statement's "what is not covered" lines (markdown), also shown in the report's
    methods appendix."""
    kind = (st.get("schema") or {}).get("kind")
    sequential = kind == "sequential"
    graph = kind == "graph"
    node_unit = graph and ((st.get("schema") or {}).get("graph") or {}).get("unit") == "node"
    return [
        "- The audit figures in `audit.json` and `report.html` (attack success rates, distances, quality and "
        "utility scores) were computed on the steward's side on the real training and holdout data and are "
        "**not** differentially private. They are evidence that the release is safe, not part of the "
        "guarantee, and the gate's pass/fail outcome is itself a small side channel.",
        "- `report.html` draws the synthetic data's distributions and table-level comparisons (distances "
        "between distributions, association differences, attack curves, risks); histograms of the real records "
        "(a bin or category that one person's value fills) stay in the steward's copy of the report.",
        "- Differential privacy bounds what the release reveals about any one record; it does not hide "
        "population-level patterns, which the synthetic data is meant to keep.",
        *(
            ["- An entity recorded under several keys (one customer with two accounts) is protected as "
             "separate entities: the guarantee for such a person is weaker (group privacy)."]
            if sequential else
            ["- A person who appears as several nodes is protected as several nodes (group privacy: a "
             "weaker guarantee for that person)."]
            if node_unit else
            ["- A person who appears as several nodes is protected per edge of each; the guarantee says "
             "nothing about the node attributes beyond what the generator card states."]
            if graph else
            ["- Records that appear several times in the source (the same person twice) are protected as "
             "separate records: the guarantee for such a person is weaker (group privacy)."]
        ),
    ]


def privacy_statement_md(st: dict[str, Any]) -> str:
    card = st["generator"]
    spend = st["spend"]
    unit = card.get("unit_of_privacy", "one record of the training split")
    kind = (st.get("schema") or {}).get("kind")
    sequential = kind == "sequential"
    graph = kind == "graph"
    node_unit = graph and ((st.get("schema") or {}).get("graph") or {}).get("unit") == "node"
    record = "entity" if sequential else "node" if node_unit else "edge" if graph else "record"
    lines = [
        f"# Privacy statement for release of run {st['run_id']}",
        "",
        "## Guarantee",
        f"The synthetic data in this bundle was produced by the `{card['name']}` generator under "
        f"**({spend['epsilon']:g}, {spend['delta']:g})-differential privacy** with respect to "
        f"{unit}.",
        "",
        f"- Accounting: {card.get('accounting', 'see generator card')}",
        f"- Unit of privacy: {unit}. Each {record} of the source was assigned to the training split by an "
        f"independent coin (holdout probability from the policy); {record}s in the holdout did not reach "
        "the generator.",
        *_sequence_lines(st),
        *_graph_lines(st),
        *(
            [
                "- **WARNING: the schema was drafted from the sensitive data and accepted without review "
                "(`--accept-drafted-schema`). Its category lists and numeric bounds were read from the data "
                "without any privacy budget and are NOT covered by the guarantee above: a rare category or an "
                "extreme value in the schema may identify a person.**"
            ]
            if st.get("domain_from_data")
            else [
                "- Every category list, numeric bound and bin edge came from the public schema below, not from "
                "the data; values outside the schema were clipped or mapped to a declared category before training."
            ]
        ),
        *(
            [] if graph else
            [f"- The number of synthetic {'entities' if sequential else 'rows'} is "
             f"{'chosen by the requester' if st.get('rows_requested') else 'the generator’s DP estimate of the training size'}."]
        ),
        f"- Source budget: this release charged epsilon {spend['epsilon']:g} and delta {spend['delta']:g} "
        f"to source `{st['source']}` under policy `{st['policy']['name']}` (caps composed by basic composition).",
        *_empirical_check(st),
        "",
        "## What is not covered",
        *not_covered_lines(st),
        "",
        "## Generator card",
        "```json",
        json.dumps(card, indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


def datasheet_md(st: dict[str, Any]) -> str:
    schema = st["schema"]
    cols = schema.get("columns", {})
    seq = schema.get("sequence")
    graph = schema.get("graph")
    if graph:
        ids = "the real (public) node ids" if graph.get("nodes") == "public" else "fresh node ids"
        composition = [
            f"A synthetic {'directed' if graph.get('directed') else 'undirected'} graph: `synthetic.parquet` / "
            f"`synthetic.csv` list its edges (`{graph['edges'].get('source', 'source')}`, "
            f"`{graph['edges'].get('target', 'target')}`), `synthetic-nodes.parquet` / `synthetic-nodes.csv` its "
            f"nodes (isolated ones included) with {ids}. No edge is a copy of a real one by construction; an edge "
            "may coincide with a real one by chance or because the structure makes it likely. "
            + ("Node attributes (synthetic draws, not a node's real values) and their public domains:" if cols
               else "There are no node attributes."),
        ]
    elif seq:
        order = seq["order"]
        composition = [
            f"Sequential data: one long table of events. Each entity (`{seq['entity']}`, fresh synthetic keys) has "
            f"1 to {seq['max_events']} events in `{order['column']}` order ({order['type']}, "
            f"{order['min']} to {order['max']}); the static columns "
            f"({', '.join(seq.get('static', [])) or 'none'}) repeat on every event row of an entity. No entity "
            "corresponds to a real one. Columns and their public domains:",
        ]
    else:
        composition = ["Each row is synthetic: it does not correspond to a real person. Columns and their public domains:"]
    lines = [
        f"# Datasheet: synthetic release of `{st['source']}` (run {st['run_id']})",
        "",
        "## Motivation and provenance",
        f"Synthetic version of the registered source `{st['source']}` ("
        f"commitment `{st['source_commitment']}`, an HMAC of its SHA-256 under the workspace's secret salt), "
        "produced by synthgate for sharing under policy "
        f"`{st['policy']['name']}`. Requested by `{st['requester']}`; approved by the stewards listed "
        "in `manifest.json`.",
        "",
        "## Composition",
        *composition,
        "",
        "| column | type | domain |",
        "| --- | --- | --- |",
    ]
    for name, spec in cols.items():
        if spec["type"] == "categorical":
            dom = ", ".join(map(str, spec["categories"][:12])) + (" ..." if len(spec["categories"]) > 12 else "")
        else:
            dom = f"[{spec['min']}, {spec['max']}]"
        if spec.get("nullable"):
            dom += " (may be missing)"
        lines.append(f"| {name} | {spec['type']} | {dom} |")
    lines += [
        "",
        "## Collection and processing",
        f"Generator: `{st['generator']['name']}`; see `privacy-statement.md` for the guarantee and "
        "`report.html` / `audit.json` for fidelity, utility and privacy-attack results.",
        "",
        "## Uses",
        "Suitable for exploratory analysis, software testing and model prototyping. Conclusions "
        "should be confirmed on the real data by its custodian; rare subgroups are distorted by the "
        "noise that protects individuals.",
        "",
        "## Maintenance",
        "Verify this bundle with `synthgate verify BUNDLE --trust release.pub` before use.",
        "",
    ]
    return "\n".join(lines)
