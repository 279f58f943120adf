"""The public description of graph data: edge file layout, node set, unit of privacy, degree cap.

The unit of privacy for graphs is one edge (DESIGN.md section 4, rule 3): two graphs are
neighbours when they differ in one edge (added or removed), over the same public node set. The
``graph`` block of a schema holds everything about the graph that is public:

.. code-block:: yaml

    kind: graph
    graph:
      directed: true
      unit: edge                # or 'node': one node with all its edges (needs max_degree, nodes: bought)
      nodes: public             # public: the node set is known (node_count or the node table's keys)
      node_count: 1005          # public node set of integer ids 0..1004 (without a node table)
      id_type: integer          # integer | string
      edges: {format: pairs}    # SNAP-style whitespace pairs with '#' comments, or
                                # {format: csv, source: src, target: dst} for a CSV with a header
      self_loops: error         # error | drop
      duplicates: error         # error | merge (undirected: (u, v) and (v, u) are the same edge)
      ignore: [weight]          # edge-file columns that are not used (edge attributes are not synthesized yet)
      max_degree: 128           # public degree cap, for generators that need one (dpdk2); with unit:
                                # node, the domain's degree bound (a node above it is refused)
    columns: {}                 # node attributes (node-table columns besides the key), public domains

The node set is either **public** (its ids are known to anyone: ``node_count`` integer ids, or the
keys of a registered node table, which the steward declares public by choosing this) or
**bought** (its size is estimated with budget; node ids in the data are then arbitrary and the
synthetic graph gets fresh ids). Under edge-level DP the node set is not what is protected, so a
public node set costs nothing; the privacy statement says which of the two was used.

**Node-level DP** (``unit: node``): two graphs are neighbours when one is the other plus one node
and all its edges. It needs a public degree bound ``max_degree: D``: the domain is graphs whose
every node has degree at most ``D`` (``conform_graph`` refuses a graph with a node above it, at
registration, with counts only), and ``nodes: bought`` (which nodes exist is what is protected).
Undirected graphs only for now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from privacy.errors import InputError

_GRAPH_KEYS = {"directed", "unit", "nodes", "node_count", "node_key", "id_type", "edges", "self_loops",
               "duplicates", "ignore", "max_degree"}
_EDGE_KEYS = {"format", "source", "target"}
MAX_NODES = 10_000_000


@dataclass(frozen=True, kw_only=True)
class GraphSpec:
    """Edge file layout, node set and the public bounds of a graph."""

    directed: bool = False
    #: the unit of privacy: one edge (neighbouring graphs differ in one edge, same node set)
    unit: Literal["edge", "node"] = "edge"
    #: "public": the node set is known; "bought": its size is estimated with budget
    nodes: Literal["public", "bought"] = "public"
    #: public node set of integer ids 0..node_count-1 (when no node table is registered)
    node_count: int | None = None
    #: the id column of a node table
    node_key: str = "node"
    id_type: Literal["integer", "string"] = "integer"
    #: "pairs": whitespace-separated id pairs, '#' comments (SNAP); "csv": a CSV with a header
    edge_format: Literal["pairs", "csv"] = "pairs"
    source: str = "source"
    target: str = "target"
    self_loops: Literal["error", "drop"] = "error"
    duplicates: Literal["error", "merge"] = "error"
    #: edge-file columns that are read past and never used or released (CSV format only)
    ignore: tuple[str, ...] = ()
    #: public degree cap: a generator that needs one (dpdk2) drops edges beyond it by a public rule
    max_degree: int | None = None

    def __post_init__(self) -> None:
        where = "schema 'graph'"
        if not isinstance(self.directed, bool):
            raise InputError(f"{where}: 'directed' must be true or false")
        if self.unit not in ("edge", "node"):
            raise InputError(f"{where}: unit must be 'edge' or 'node', not {self.unit!r}")
        if self.nodes not in ("public", "bought"):
            raise InputError(f"{where}: nodes must be 'public' or 'bought', not {self.nodes!r}")
        if self.id_type not in ("integer", "string"):
            raise InputError(f"{where}: id_type must be 'integer' or 'string', not {self.id_type!r}")
        if self.node_count is not None:
            if isinstance(self.node_count, bool) or not isinstance(self.node_count, int):
                raise InputError(f"{where}: node_count must be an integer")
            if not 2 <= self.node_count <= MAX_NODES:
                raise InputError(f"{where}: node_count must be in [2, {MAX_NODES}]")
            if self.nodes != "public":
                raise InputError(f"{where}: node_count makes the node set public; drop it or set nodes: public")
            if self.id_type != "integer":
                raise InputError(f"{where}: node_count means integer ids 0..node_count-1 (id_type: integer)")
        if self.edge_format not in ("pairs", "csv"):
            raise InputError(f"{where}: edges format must be 'pairs' or 'csv', not {self.edge_format!r}")
        if self.edge_format == "csv":
            if not self.source or not self.target or self.source == self.target:
                raise InputError(f"{where}: a csv edge file needs distinct 'source' and 'target' column names")
            if self.source in self.ignore or self.target in self.ignore:
                raise InputError(f"{where}: 'ignore' cannot name the source or target column")
        elif self.ignore:
            raise InputError(f"{where}: 'ignore' is for csv edge files (pairs files have two ids per line)")
        if self.self_loops not in ("error", "drop"):
            raise InputError(f"{where}: self_loops must be 'error' or 'drop'")
        if self.duplicates not in ("error", "merge"):
            raise InputError(f"{where}: duplicates must be 'error' or 'merge'")
        if len(set(self.ignore)) != len(self.ignore):
            raise InputError(f"{where}: 'ignore' repeats a column")
        if self.max_degree is not None:
            if isinstance(self.max_degree, bool) or not isinstance(self.max_degree, int):
                raise InputError(f"{where}: max_degree must be an integer")
            if not 1 <= self.max_degree <= 100_000:
                raise InputError(f"{where}: max_degree must be in [1, 100000]")
        if self.unit == "node":
            # node-level DP: the domain is graphs of maximum degree <= max_degree (public), and which
            # nodes exist is what is protected, so the node set cannot be public
            if self.max_degree is None:
                raise InputError(f"{where}: unit 'node' needs a public degree bound max_degree (every node's "
                                 "degree at most max_degree)")
            if self.nodes != "bought":
                raise InputError(f"{where}: unit 'node' needs nodes: bought (a node's presence is what is "
                                 "protected, so the node set cannot be public)")
            if self.directed:
                raise InputError(f"{where}: unit 'node' for directed graphs is not supported yet")

    def check_columns(self, names: list[str]) -> None:
        """The node-attribute columns must not reuse the node key's name."""
        if self.node_key in names:
            raise InputError(f"schema 'graph': {self.node_key!r} is the node key; do not list it under 'columns'")

    @property
    def public_nodes(self) -> bool:
        return self.nodes == "public"

    @property
    def node_unit(self) -> bool:
        """Node-level DP: the unit is one node with all its edges (degree at most ``max_degree``)."""
        return self.unit == "node"

    def privacy_unit(self) -> str:
        """The unit of privacy in words, for cards and statements."""
        if self.node_unit:
            return (f"one node with all its edges (add/remove one node; every node has degree at most "
                    f"{self.max_degree})")
        kind = "directed" if self.directed else "undirected"
        nodes = ("over a public node set" if self.public_nodes
                 else "over a node set whose size is estimated with part of the budget")
        return f"one {kind} edge (add/remove one edge, {nodes})"

    def to_dict(self) -> dict[str, Any]:
        edges: dict[str, Any] = {"format": self.edge_format}
        if self.edge_format == "csv":
            edges.update(source=self.source, target=self.target)
        out: dict[str, Any] = {"directed": self.directed, "unit": self.unit, "nodes": self.nodes}
        if self.node_count is not None:
            out["node_count"] = self.node_count
        out.update(node_key=self.node_key, id_type=self.id_type, edges=edges, self_loops=self.self_loops,
                   duplicates=self.duplicates)
        if self.ignore:
            out["ignore"] = list(self.ignore)
        if self.max_degree is not None:
            out["max_degree"] = self.max_degree
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> "GraphSpec":
        where = "schema 'graph'"
        if not isinstance(raw, dict):
            raise InputError(f"{where} must be a mapping (directed, nodes, edges, ...)")
        unknown = set(raw) - _GRAPH_KEYS
        if unknown:
            raise InputError(f"{where} has unknown keys: {', '.join(sorted(map(str, unknown)))}")
        edges = _absent_is(raw.get("edges"), {"format": "pairs"})
        if not isinstance(edges, dict):
            raise InputError(f"{where}: 'edges' must be a mapping (format, source, target)")
        unknown = set(edges) - _EDGE_KEYS
        if unknown:
            raise InputError(f"{where}: 'edges' has unknown keys: {', '.join(sorted(map(str, unknown)))}")
        ignore = _absent_is(raw.get("ignore"), [])
        if not isinstance(ignore, list):
            raise InputError(f"{where}: 'ignore' must be a list of column names")
        return cls(
            directed=raw.get("directed", False),
            unit=raw.get("unit", "edge"),
            nodes=raw.get("nodes", "public"),
            node_count=_opt_int(raw.get("node_count"), "node_count"),
            node_key=_name(raw.get("node_key", "node"), "node_key"),
            id_type=raw.get("id_type", "integer"),
            edge_format=edges.get("format", "pairs"),
            source=_name(edges.get("source", "source"), "edges 'source'"),
            target=_name(edges.get("target", "target"), "edges 'target'"),
            self_loops=raw.get("self_loops", "error"),
            duplicates=raw.get("duplicates", "error"),
            ignore=tuple(_name(c, "'ignore' entry") for c in ignore),
            max_degree=_opt_int(raw.get("max_degree"), "max_degree"),
        )


def _name(v: Any, what: str) -> str:
    """A column name: text (a bare number is read as its text), never a list, mapping or yes/no/null."""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise InputError(f"schema 'graph': {what} must be a column name (quote yes/no/null)")
    return str(v)


def _opt_int(v: Any, name: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise InputError(f"schema 'graph': {name} must be an integer")
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"schema 'graph': {name} must be an integer") from None
    if not f.is_integer():
        raise InputError(f"schema 'graph': {name} must be an integer")
    return int(f)


def _absent_is(value: Any, default: Any) -> Any:
    """``default`` for a key left out or null; any other value as given (``[]``, ``""`` or 0 are not "absent")."""
    return default if value is None else value
