"""Graph data: an edge list (and an optional node table) conformed to the public schema.

The unit of privacy is one edge (``privacy.graph_spec``). This module turns the steward's files
into a ``GraphData``: nodes are indexed ``0..n_nodes-1``; ``edges`` is an ``(m, 2)`` int64 array of
node indices, canonical (undirected: ``u < v``), sorted, without duplicates or self-loops;
``labels`` maps indices to the node ids written in the files.

Clear errors (counts, never ids) for: lines of a pairs file that are not two ids, ids that are not
integers where the schema says integer, missing ids, self-loops and duplicate edges where the
schema forbids them, edges to nodes outside a public node set, a node table with duplicate or
missing keys, missing or extra columns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from privacy.errors import InputError, IntegrityError
from privacy.graph_spec import GraphSpec
from privacy.schema import Schema
from privacy.split import split_mask
from privacy.table import conform_column, parse_table

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


@dataclass(frozen=True)
class GraphReport:
    """What conforming changed, as counts (never ids)."""

    nodes: int
    edges: int
    self_loops_dropped: int = 0
    duplicates_merged: int = 0
    isolated_nodes: int = 0
    clipped: dict[str, int] = field(default_factory=dict)
    mapped_to_other: dict[str, int] = field(default_factory=dict)

    @property
    def total_changed(self) -> int:
        return (self.self_loops_dropped + self.duplicates_merged + sum(self.clipped.values())
                + sum(self.mapped_to_other.values()))

    def to_dict(self) -> dict[str, object]:
        return {"nodes": self.nodes, "edges": self.edges, "self_loops_dropped": self.self_loops_dropped,
                "duplicates_merged": self.duplicates_merged, "isolated_nodes": self.isolated_nodes,
                "clipped": dict(self.clipped), "mapped_to_other": dict(self.mapped_to_other)}


@dataclass(frozen=True, eq=False)
class GraphData:
    """A conformed graph over nodes ``0..n_nodes-1``.

    ``labels[i]`` is node ``i``'s id as text (the public ids, or fresh ones for a synthetic graph
    whose node set was bought); ``nodes`` holds the node attributes, one row per node in index
    order, or None when the schema has none. With ``spec.nodes == "bought"`` the node count and the
    ids are *sensitive*: a generator must not read ``n_nodes`` without buying it.
    """

    n_nodes: int
    edges: np.ndarray
    spec: GraphSpec
    labels: tuple[str, ...]
    nodes: pl.DataFrame | None = None

    def __post_init__(self) -> None:
        import numpy as np

        e = self.edges
        if e.ndim != 2 or e.shape[1] != 2 or e.dtype != np.int64:
            raise ValueError("edges must be an (m, 2) int64 array")
        if len(self.labels) != self.n_nodes:
            raise ValueError("labels must name every node")

    @property
    def directed(self) -> bool:
        return self.spec.directed

    @property
    def n_edges(self) -> int:
        return int(self.edges.shape[0])

    @property
    def height(self) -> int:
        """Edges: the unit of privacy is the edge."""
        return self.n_edges

    def out_degrees(self) -> np.ndarray:
        import numpy as np

        return np.bincount(self.edges[:, 0], minlength=self.n_nodes).astype(np.int64)

    def in_degrees(self) -> np.ndarray:
        import numpy as np

        return np.bincount(self.edges[:, 1], minlength=self.n_nodes).astype(np.int64)

    def degrees(self) -> np.ndarray:
        """Total degree per node (in + out for directed graphs)."""
        return self.out_degrees() + self.in_degrees()

    def with_edges(self, edges: np.ndarray) -> "GraphData":
        """The same nodes with other edges (canonicalised)."""
        return GraphData(n_nodes=self.n_nodes, edges=canonical_edges(edges, self.directed), spec=self.spec,
                         labels=self.labels, nodes=self.nodes)

    def to_networkx(self):  # type: ignore[no-untyped-def]  # networkx is untyped
        """A networkx (Di)Graph over node indices (every node, isolated ones included)."""
        import networkx as nx

        g = nx.DiGraph() if self.directed else nx.Graph()
        g.add_nodes_from(range(self.n_nodes))
        g.add_edges_from(map(tuple, self.edges.tolist()))
        return g

    def edge_frame(self) -> pl.DataFrame:
        """The edge list with node ids, columns named as the schema's edge file."""
        import numpy as np
        import polars as pl

        lab = np.asarray(self.labels, dtype=object)
        src, dst = (self.spec.source, self.spec.target)
        return pl.DataFrame({src: lab[self.edges[:, 0]].tolist() if self.n_edges else [],
                             dst: lab[self.edges[:, 1]].tolist() if self.n_edges else []},
                            schema={src: pl.Utf8, dst: pl.Utf8})

    def node_frame(self) -> pl.DataFrame:
        """Every node's id (isolated nodes included) and its attributes."""
        import polars as pl

        ids = pl.DataFrame({self.spec.node_key: list(self.labels)}, schema={self.spec.node_key: pl.Utf8})
        return ids if self.nodes is None else pl.concat([ids, self.nodes], how="horizontal")


def canonical_edges(edges: np.ndarray, directed: bool) -> np.ndarray:
    """Sorted unique edges without self-loops; undirected edges as (min, max)."""
    import numpy as np

    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if not directed:
        e = np.sort(e, axis=1)
    e = e[e[:, 0] != e[:, 1]]
    if e.shape[0] == 0:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(e, axis=0)


# -- reading ---------------------------------------------------------------------------------------


def read_edge_bytes(data: bytes, spec: GraphSpec, hint: str) -> tuple[list[str], list[str]]:
    """Source and target ids as stripped text, from a pairs file or a CSV with a header."""
    import polars as pl

    if spec.edge_format == "pairs":
        if data[:4] == b"PAR1":
            raise InputError(f"{hint}: a Parquet edge file needs edges format 'csv' with source/target columns")
        if b"\x00" in data:
            raise InputError(f"{hint} is not an edge list (it holds NUL bytes)")
        try:
            text = data.decode("utf-8-sig")  # a byte order mark is not part of the first id
        except UnicodeDecodeError:
            raise InputError(f"{hint} is not UTF-8 text") from None
        src: list[str] = []
        dst: list[str] = []
        bad = 0
        for line in text.splitlines():
            s = line.strip()
            if not s or s.startswith("#") or s.startswith("%"):
                continue
            parts = s.split()
            if len(parts) != 2:
                bad += 1
                continue
            src.append(parts[0])
            dst.append(parts[1])
        if bad:
            raise InputError(f"{hint}: {bad} lines are not two whitespace-separated node ids")
        if not src:
            raise InputError(f"{hint}: no edges")
        return src, dst
    df = parse_table(data, hint)
    wanted = [spec.source, spec.target, *spec.ignore]
    missing = [c for c in wanted if c not in df.columns]
    extra = [c for c in df.columns if c not in wanted]
    if missing:
        raise InputError(f"{hint}: missing columns: {', '.join(missing)}")
    if extra:
        raise InputError(f"{hint}: columns not in the schema (list edge attributes under graph 'ignore'): "
                         f"{', '.join(extra)}")
    out = []
    for col in (spec.source, spec.target):
        ids = df.get_column(col).cast(pl.Utf8, strict=False).str.strip_chars()
        n_bad = ids.null_count() + int((ids == "").sum())
        if n_bad:
            raise InputError(f"{hint}: {n_bad} edges have no {col!r} id")
        out.append(ids.to_list())
    return out[0], out[1]


_INT_ID = re.compile(r"[+-]?[0-9]{1,4000}")


def _int_ids(ids: list[str], hint: str) -> list[str]:
    """Integer ids in canonical text (``007`` and ``7`` are one node); error for anything else."""
    out = []
    bad = 0
    for t in ids:
        # ASCII digits only: int() also reads "1_000", "١٢" and " 7", which no edge file means as ids
        if _INT_ID.fullmatch(t):
            out.append(str(int(t)))
        else:
            bad += 1
    if bad:
        raise InputError(f"{hint}: {bad} node ids are not integers (the schema says id_type: integer)")
    return out


def conform_graph(
    edge_data: bytes, node_data: bytes | None, schema: Schema, *, path_hint: str = "edges"
) -> tuple[GraphData, GraphReport]:
    """Validate and conform a graph to ``schema`` (see the module docstring)."""
    import numpy as np
    import polars as pl

    spec = schema.gspec
    src, dst = read_edge_bytes(edge_data, spec, path_hint)
    if spec.id_type == "integer":
        src, dst = _int_ids(src, path_hint), _int_ids(dst, path_hint)

    clipped: dict[str, int] = {}
    mapped: dict[str, int] = {}
    attrs: pl.DataFrame | None = None
    if node_data is not None:
        if not spec.public_nodes:
            raise InputError("a node table with nodes: bought is not supported yet (declare the node set public)")
        nodes_raw = parse_table(node_data, f"{path_hint} (node table)")
        wanted = [spec.node_key, *schema.names]
        missing = [c for c in wanted if c not in nodes_raw.columns]
        extra = [c for c in nodes_raw.columns if c not in wanted]
        if missing:
            raise InputError(f"{path_hint} (node table): missing columns: {', '.join(missing)}")
        if extra:
            raise InputError(f"{path_hint} (node table): columns not in the schema: {', '.join(extra)}")
        keys = nodes_raw.get_column(spec.node_key).cast(pl.Utf8, strict=False).str.strip_chars()
        n_bad = keys.null_count() + int((keys == "").sum())
        if n_bad:
            raise InputError(f"{path_hint} (node table): {n_bad} rows have no node id")
        key_list = keys.to_list()
        if spec.id_type == "integer":
            key_list = _int_ids(key_list, f"{path_hint} (node table)")
        if len(set(key_list)) != len(key_list):
            raise InputError(f"{path_hint} (node table): {len(key_list) - len(set(key_list))} node ids appear more than once")
        if spec.node_count is not None and len(key_list) != spec.node_count:
            raise InputError(f"{path_hint} (node table): {len(key_list)} nodes but the schema's node_count is "
                             f"{spec.node_count}")
        labels = key_list
        if schema.columns:
            attrs = pl.DataFrame([conform_column(nodes_raw.get_column(c.name), c, f"{path_hint} (node table)",
                                                 clipped, mapped) for c in schema.columns])
    elif schema.columns:
        raise InputError(f"the schema has node attributes ({', '.join(schema.names)}) but no node table was given")
    elif spec.public_nodes:
        if spec.node_count is None:
            raise InputError("a public node set needs graph 'node_count' (ids 0..node_count-1) or a node table")
        labels = [str(i) for i in range(spec.node_count)]
    else:
        ends = sorted(set(src) | set(dst), key=(lambda t: int(t)) if spec.id_type == "integer" else None)
        labels = ends

    index = {lab: i for i, lab in enumerate(labels)}
    try:
        u = np.fromiter((index[t] for t in src), dtype=np.int64, count=len(src))
        v = np.fromiter((index[t] for t in dst), dtype=np.int64, count=len(dst))
    except KeyError:
        unknown = sum(1 for t in (*src, *dst) if t not in index)
        raise InputError(f"{path_hint}: {unknown} edge endpoints are not in the public node set "
                         f"({'the node table' if node_data is not None else f'ids 0..{len(labels) - 1}'})") from None

    loops = int((u == v).sum())
    if loops and spec.self_loops == "error":
        raise InputError(f"{path_hint}: {loops} self-loops (declare self_loops: drop to drop them)")
    raw = np.stack([u, v], axis=1)
    keep = raw[raw[:, 0] != raw[:, 1]]
    edges = canonical_edges(keep, spec.directed)
    dups = int(keep.shape[0] - edges.shape[0])
    if dups and spec.duplicates == "error":
        what = "duplicate edges" if spec.directed else "duplicate edges ((u, v) and (v, u) are one undirected edge)"
        raise InputError(f"{path_hint}: {dups} {what} (declare duplicates: merge to merge them)")
    n = len(labels)
    deg = np.bincount(edges.ravel(), minlength=n) if edges.size else np.zeros(n, dtype=np.int64)
    if spec.node_unit:
        # node-level DP holds over graphs of maximum degree <= max_degree: like a value outside a
        # declared domain, a graph outside it is refused at registration (counts only; nothing released)
        assert spec.max_degree is not None  # GraphSpec requires it with unit node
        above = int((deg > spec.max_degree).sum())
        if above:
            raise InputError(f"{path_hint}: {above} nodes have degree above the schema's max_degree "
                             f"{spec.max_degree} (unit: node covers graphs of degree at most max_degree)")
    graph = GraphData(n_nodes=n, edges=edges, spec=spec, labels=tuple(labels), nodes=attrs)
    report = GraphReport(nodes=n, edges=int(edges.shape[0]), self_loops_dropped=loops, duplicates_merged=dups,
                         isolated_nodes=int((deg == 0).sum()), clipped=clipped, mapped_to_other=mapped)
    return graph, report


def _read(path: str | Path, hint: str) -> tuple[bytes, str]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{hint} not found: {p}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {hint} {p}") from exc
    if not data:
        raise InputError(f"{hint} is empty: {p}")
    return data, hashlib.sha256(data).hexdigest()


def read_graph(edges_path: str | Path, nodes_path: str | Path | None, schema: Schema
               ) -> tuple[GraphData, GraphReport, str, str | None]:
    """Read and conform the edge file (and node table); returns their fingerprints too."""
    edata, efp = _read(edges_path, "edge file")
    ndata, nfp = (None, None) if nodes_path is None else _read(nodes_path, "node table")
    graph, report = conform_graph(edata, ndata, schema, path_hint=str(edges_path))
    return graph, report, efp, nfp


def load_graph_verified(edges_path: str | Path, schema: Schema, expected: str, nodes_path: str | Path | None = None,
                        expected_nodes: str | None = None) -> GraphData:
    """Read registered graph files, refusing them if their bytes changed since registration."""
    edata, efp = _read(edges_path, "edge file")
    if efp != expected:
        raise IntegrityError(f"{edges_path} changed since it was registered (SHA-256 differs); register the new version")
    ndata = None
    if nodes_path is not None:
        ndata, nfp = _read(nodes_path, "node table")
        if nfp != expected_nodes:
            raise IntegrityError(f"{nodes_path} changed since it was registered (SHA-256 differs); register the new version")
    return conform_graph(edata, ndata, schema, path_hint=str(edges_path))[0]


def split_edges(graph: GraphData, holdout_fraction: float, seed: int) -> tuple[GraphData, GraphData]:
    """Edge-level train/holdout split: one independent coin per edge (canonical edge order).

    Both parts keep every node (the node set is public, or bought from the training part). Removing
    one edge removes its coin and nothing else, so the training graph is a Poisson subsample of edges.
    """
    mask = split_mask(graph.n_edges, holdout_fraction, seed)
    train, holdout = graph.with_edges(graph.edges[~mask]), graph.with_edges(graph.edges[mask])
    if train.n_edges < 2 or holdout.n_edges < 2:
        raise InputError("the graph is too small to split into training and holdout edges")
    return train, holdout


def split_nodes(graph: GraphData, holdout_fraction: float, seed: int) -> tuple[GraphData, GraphData]:
    """Node-level train/holdout split (``unit: node``): one independent coin per node (index order,
    which is sorted id order for a bought node set).

    The training graph is the subgraph induced on the training nodes, the holdout graph the one
    induced on the holdout nodes; each keeps its own nodes' ids (``labels``), isolated ones included,
    and edges between the two sides are in neither. With i.i.d. coins (secret seed) the training
    nodes are a Poisson subsample of the nodes; coupling the coins by node, removing one node ``w``
    from the source removes ``w`` and its edges from the training graph when ``w``'s coin says
    train, and when it says holdout changes the training graph at most by training neighbours of
    ``w`` whose only edge was to ``w`` (isolated there, absent from the source without ``w``).
    """
    mask = split_mask(graph.n_nodes, holdout_fraction, seed)
    train, holdout = induced_subgraph(graph, ~mask), induced_subgraph(graph, mask)
    if train.n_edges < 2 or holdout.n_nodes < 2:
        raise InputError("the graph is too small to split into training and holdout nodes")
    return train, holdout


def induced_subgraph(graph: GraphData, keep: np.ndarray) -> GraphData:
    """The subgraph induced on the nodes where ``keep`` is True (their ids, attributes and edges)."""
    import numpy as np
    import polars as pl

    keep = np.asarray(keep, dtype=bool)
    new_index = np.full(graph.n_nodes, -1, dtype=np.int64)
    new_index[keep] = np.arange(int(keep.sum()), dtype=np.int64)
    e = graph.edges
    both = keep[e[:, 0]] & keep[e[:, 1]] if e.shape[0] else np.zeros(0, dtype=bool)
    edges = canonical_edges(new_index[e[both]], graph.directed)
    labels = tuple(lab for lab, k in zip(graph.labels, keep.tolist()) if k)
    nodes = None if graph.nodes is None else graph.nodes.filter(pl.Series(keep))
    return GraphData(n_nodes=len(labels), edges=edges, spec=graph.spec, labels=labels, nodes=nodes)


def parse_synthetic_graph(edge_data: bytes, node_data: bytes | None, schema: Schema, hint: str = "synthetic"
                          ) -> GraphData:
    """A stored synthetic graph (our CSV/Parquet edge list and node table) back into ``GraphData``.

    Stored outputs are always a CSV/Parquet edge list with the schema's source/target names and a
    node table with every node (isolated ones included), whatever the registered file format was.
    """
    spec = schema.gspec
    # unit "edge" for the stored file: the node-unit rules (bought node set, degree bound) are about the
    # steward's data, not a synthetic output, which may exceed max_degree by chance (Chung-Lu)
    stored = dataclasses.replace(spec, edge_format="csv", nodes="public", node_count=None, ignore=(),
                                 id_type="string", unit="edge")
    stored_schema = Schema(columns=schema.columns, kind="graph", graph=stored, name=schema.name)
    if node_data is None:
        raise InputError(f"{hint}: a synthetic graph needs its node table")
    edges = parse_table(edge_data, hint) if edge_data[:4] == b"PAR1" else None
    if edges is not None:
        buf = io.BytesIO()
        edges.write_csv(buf)
        edge_data = buf.getvalue()
    graph = conform_graph(edge_data, _csv(node_data, f"{hint} (node table)"), stored_schema, path_hint=hint)[0]
    return GraphData(n_nodes=graph.n_nodes, edges=graph.edges, spec=spec, labels=graph.labels, nodes=graph.nodes)


def conform_external_graph(edge_data: bytes, node_data: bytes, schema: Schema, hint: str = "synthetic",
                           public_labels: Sequence[str] | None = None) -> tuple[GraphData, GraphReport]:
    """A synthetic graph made outside synthgate (an edge list and a node table) as ``GraphData``.

    The edge list is in the schema's edge format (SNAP pairs, or a CSV with the schema's
    source/target columns), or a CSV/Parquet with the schema's source/target columns (what
    ``export-train`` writes); the node table (CSV or Parquet) lists every node id, isolated ones
    included, with the schema's node key and node attributes. Ids follow the schema's ``id_type``.
    Self-loops are dropped and duplicate edges merged, whatever the schema says of the registered
    file (they are the outside generator's output, not the steward's data): the report counts them.

    With ``public_labels`` (the real graph's public node ids, in its index order) the node table's
    ids must be exactly those, and the result is indexed like the real graph; a graph over other ids
    cannot be audited against the real one.
    """
    import numpy as np

    spec = schema.gspec
    as_csv = edge_data[:4] == b"PAR1" or (spec.edge_format == "pairs" and _has_header(edge_data, spec))
    if as_csv:
        edge_data = _csv(edge_data, hint)
    outside = dataclasses.replace(spec, edge_format="csv" if as_csv else spec.edge_format, nodes="public", node_count=None,
                                  self_loops="drop", duplicates="merge", unit="edge")
    outside_schema = Schema(columns=schema.columns, kind="graph", graph=outside, name=schema.name)
    graph, report = conform_graph(edge_data, _csv(node_data, f"{hint} (node table)"), outside_schema, path_hint=hint)
    if public_labels is None:
        return GraphData(n_nodes=graph.n_nodes, edges=graph.edges, spec=spec, labels=graph.labels,
                         nodes=graph.nodes), report
    public = {lab: i for i, lab in enumerate(public_labels)}
    unknown = sum(1 for lab in graph.labels if lab not in public)
    if unknown:
        raise InputError(f"{hint} (node table): {unknown} node ids are not in the public node set; a graph over "
                         "other ids cannot be audited against the real graph")
    if graph.n_nodes != len(public):
        raise InputError(f"{hint} (node table): {len(public) - graph.n_nodes} of the {len(public)} public node ids "
                         "are missing (list every node, isolated ones included)")
    pos = np.fromiter((public[lab] for lab in graph.labels), dtype=np.int64, count=graph.n_nodes)
    nodes = None if graph.nodes is None else graph.nodes[np.argsort(pos).tolist()]
    return GraphData(n_nodes=graph.n_nodes, edges=canonical_edges(pos[graph.edges], spec.directed), spec=spec,
                     labels=tuple(public_labels), nodes=nodes), report


def _has_header(data: bytes, spec: GraphSpec) -> bool:
    """Whether a text edge file starts with a CSV header naming the schema's source and target columns."""
    for line in data[:65536].decode("utf-8", errors="replace").splitlines():
        s = line.strip()
        if not s or s.startswith("#") or s.startswith("%"):
            continue
        names = {f.strip().strip('"').strip() for f in s.split(",")}
        return spec.source in names and spec.target in names
    return False


def _csv(data: bytes, hint: str) -> bytes:
    if data[:4] != b"PAR1":
        return data
    buf = io.BytesIO()
    parse_table(data, hint).write_csv(buf)
    return buf.getvalue()

