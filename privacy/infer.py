"""Drafting a schema from data: a convenience that reads the sensitive data for free.

A drafted domain is NOT public: the categories and bounds are read from the sensitive data without
any privacy budget. The drafted file says so loudly and is marked ``drafted_from_data: true``; a
steward must review it (widen bounds to public values, add categories from documentation) and
remove the mark before use. ``register`` refuses a schema that still carries it unless the steward
explicitly accepts it.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Literal

import polars as pl
import yaml

from privacy.errors import InputError
from privacy.graph_spec import GraphSpec
from privacy.graphs import read_edge_bytes
from privacy.schema import Column, Schema
from privacy.sequence_spec import SequenceSpec
from privacy.table import read_raw

DRAFT_WARNING = (
    "WARNING: this schema was drafted from the sensitive data. Its category lists and numeric "
    "bounds were read from the data without any privacy budget and are NOT public: a rare category "
    "or an extreme value can identify a person. Review every domain (replace bounds by public "
    "values, categories by documented lists) and remove 'drafted_from_data' before registering."
)
SEQUENCE_DRAFT_WARNING = (
    DRAFT_WARNING + " For sequences this includes the order bounds, the gap bounds and the per-entity "
    "event cap (max_events, drafted as the 95th percentile of the sequence lengths): replace them by public "
    "values (the study period, the protocol's visit schedule) before registering."
)

GRAPH_DRAFT_WARNING = (
    DRAFT_WARNING + " For graphs this includes the node count (drafted as the largest id + 1), the "
    "node table's attribute domains, the self-loop and duplicate rules, and the degree cap max_degree "
    "(drafted as the 99th percentile of the degrees rounded up to a multiple of 8): replace them by public "
    "values (the size of the organisation, a documented contact limit) before registering."
)

_MAX_CATEGORIES = 200


def infer_schema(path: str | Path, *, name: str = "") -> Schema:
    """Draft a schema from a CSV or Parquet file (see the module docstring: not private)."""
    raw = read_raw(path)
    cols = [_infer_column(c, raw.get_column(c), nullable_ok=False) for c in raw.columns]
    return Schema(columns=tuple(cols), name=name, drafted_from_data=True)


def _infer_column(c: str, s: pl.Series, *, nullable_ok: bool) -> Column:
    txt = s.cast(pl.Utf8, strict=False).str.strip_chars() if s.dtype != pl.Utf8 else s.str.strip_chars()
    missing = txt.is_null() | (txt == "")
    non_null = txt.filter(~missing)
    nullable = nullable_ok and bool(missing.any())
    as_float = non_null.cast(pl.Float64, strict=False)
    # NaN and infinities are no numeric domain: such a column is drafted as categorical
    numeric = (non_null.len() > 0 and as_float.null_count() == 0 and bool(as_float.is_finite().all())
               and non_null.n_unique() > 20)
    if numeric:
        # integer bounds must be exact in a float (Column refuses others): larger values draft a float column
        is_int = bool((as_float.round(0) == as_float).all()) and float(as_float.abs().max()) < 2**53  # type: ignore[arg-type]
        lo, hi = float(as_float.min()), float(as_float.max())  # type: ignore[arg-type]
        if lo == hi:
            hi = lo + 1
        if is_int:
            return Column(name=c, type="integer", min=math.floor(lo), max=math.ceil(hi), nullable=nullable)
        return Column(name=c, type="float", min=lo, max=hi, nullable=nullable)
    values = non_null if nullable else txt.fill_null("")
    cats = sorted(values.unique().to_list(), key=str)[:_MAX_CATEGORIES]
    return Column(name=c, type="categorical", categories=tuple(str(x) for x in cats) or ("",), nullable=nullable)


#: date formats tried, in order, for a sequence's order column
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%Y%m%d", "%y%m%d")
#: the drafted event cap: this quantile of the entities' sequence lengths, rounded up to a multiple of 8
_DRAFT_LENGTH_QUANTILE = 0.95


def infer_sequence_schema(
    path: str | Path, *, entity: str, order: str, static: tuple[str, ...] = (), name: str = "",
    statics_path: str | Path | None = None,
) -> Schema:
    """Draft a sequential schema: domains, order bounds, gap bounds and an event cap, all read from
    the data (see the module docstring: not private). The event cap is the 95th percentile of the
    sequence lengths rounded up to a multiple of 8, so that a few very long sequences do not set
    every entity's contribution bound."""
    raw = read_raw(path)
    statics_raw = read_raw(statics_path) if statics_path is not None else None
    for col, what in ((entity, "--entity"), (order, "--order")):
        if col not in raw.columns:
            raise InputError(f"{path}: no column {col!r} ({what})")
    if statics_raw is not None:
        if entity not in statics_raw.columns:
            raise InputError(f"{statics_path}: no column {entity!r} (--entity)")
        static = tuple(c for c in statics_raw.columns if c != entity)
    else:
        unknown = [c for c in static if c not in raw.columns or c in (entity, order)]
        if unknown:
            raise InputError(f"{path}: --static names unknown or key columns: {', '.join(unknown)}")
    keys = raw.get_column(entity).cast(pl.Utf8, strict=False).str.strip_chars()
    txt = raw.get_column(order).cast(pl.Utf8, strict=False).str.strip_chars()
    if txt.null_count() or bool((txt == "").any()) or keys.null_count():
        raise InputError(f"{path}: the entity and order columns must have no missing values")
    as_float = txt.cast(pl.Float64, strict=False)
    integers = (as_float.null_count() == 0 and bool(as_float.is_finite().all())
                and bool((as_float.round(0) == as_float).all()) and float(as_float.abs().max()) < 2**53)  # type: ignore[arg-type]
    if integers and not _looks_like_date(txt):
        otype: Literal["integer", "date"] = "integer"
        fmt = "%Y-%m-%d"
        values = as_float.cast(pl.Int64)
    else:
        otype = "date"
        for fmt in _DATE_FORMATS:
            parsed = txt.str.strptime(pl.Date, fmt, strict=False)
            if parsed.null_count() == 0:
                values = parsed.cast(pl.Int64)
                break
        else:
            raise InputError(f"{path}: order column {order!r} is neither integers nor dates in a known format")
    frame = pl.DataFrame({"k": keys, "o": values})
    gaps = frame.select(pl.col("o").diff().over("k")).get_column("o").drop_nulls()
    lengths = frame.group_by("k").len().get_column("len")
    ties = bool((gaps == 0).any())
    lo, hi = int(values.min()), int(values.max())  # type: ignore[arg-type]
    if lo == hi:
        hi = lo + 1
    gap_max = max(int(gaps.max()) if gaps.len() else 1, 1)  # type: ignore[arg-type]
    cap = int(math.ceil(float(lengths.quantile(_DRAFT_LENGTH_QUANTILE, "higher") or 1) / 8) * 8)
    spec = SequenceSpec(
        entity=entity, order=order, order_type=otype, date_format=fmt, order_min=lo, order_max=hi,
        gap_min=0 if ties else 1, gap_max=min(gap_max, hi - lo), ties=ties, max_events=max(cap, 1),
        static=tuple(static),
    )
    cols = []
    for c in raw.columns:
        if c in (entity, order) or (statics_raw is not None and c in static):
            continue
        cols.append(_infer_column(c, raw.get_column(c), nullable_ok=True))
    if statics_raw is not None:
        cols += [_infer_column(c, statics_raw.get_column(c), nullable_ok=True) for c in static]
    return Schema(columns=tuple(cols), name=name, drafted_from_data=True, kind="sequential", sequence=spec)


def _looks_like_date(txt: pl.Series) -> bool:
    """Eight- or six-digit integers that all parse as dates (19930101, 930101) are dates."""
    lengths = txt.str.len_chars()
    if not bool(((lengths == 8) | (lengths == 6)).all()):
        return False
    fmt = "%Y%m%d" if bool((lengths == 8).all()) else "%y%m%d"
    return txt.str.strptime(pl.Date, fmt, strict=False).null_count() == 0


#: the drafted degree cap: this quantile of the node degrees, rounded up to a multiple of 8
_DRAFT_DEGREE_QUANTILE = 0.99


def infer_graph_schema(
    path: str | Path, *, directed: bool = False, nodes_path: str | Path | None = None, name: str = "",
    node_key: str | None = None,
) -> Schema:
    """Draft a graph schema from an edge list (SNAP-style pairs, or a CSV whose first two columns are
    the endpoints) and an optional node table (its first column is the node id, unless ``node_key``).

    Read from the data, and flagged as such (not private): the id type, the node count (largest
    integer id + 1) or the node table's ids, whether self-loops and repeated edges occur (drafted as
    "drop"/"merge" when they do), the node attributes' domains and a degree cap.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"edge file not found: {p}")
    data = p.read_bytes()
    first = next((ln for ln in data.decode("utf-8", errors="replace").splitlines()
                  if ln.strip() and not ln.lstrip().startswith(("#", "%"))), "")
    fmt: Literal["pairs", "csv"] = "csv" if ("," in first or data[:4] == b"PAR1") else "pairs"
    src_col, dst_col = "source", "target"
    ignore: tuple[str, ...] = ()
    if fmt == "csv":
        raw = read_raw(p)
        if raw.width < 2:
            raise InputError(f"{p}: an edge CSV needs at least two columns (source, target)")
        src_col, dst_col = raw.columns[0], raw.columns[1]
        ignore = tuple(raw.columns[2:])
    base = GraphSpec(directed=directed, nodes="bought", id_type="string", edge_format=fmt, source=src_col,
                     target=dst_col, ignore=ignore, self_loops="drop", duplicates="merge")
    src, dst = read_edge_bytes(data, base, str(p))
    ints = all(_is_int(t) for t in (*src, *dst))
    cols: list[Column] = []
    key = node_key
    node_ids: list[str] | None = None
    if nodes_path is not None:
        nodes_raw = read_raw(nodes_path)
        key = node_key or nodes_raw.columns[0]
        if key not in nodes_raw.columns:
            raise InputError(f"{nodes_path}: no column {key!r} (--node-key)")
        node_ids = nodes_raw.get_column(key).cast(pl.Utf8, strict=False).str.strip_chars().to_list()
        ints = ints and all(_is_int(str(t)) for t in node_ids)
        cols = [_infer_column(c, nodes_raw.get_column(c), nullable_ok=False) for c in nodes_raw.columns if c != key]
    us = [str(int(t)) if ints else t for t in src]
    vs = [str(int(t)) if ints else t for t in dst]
    loops = any(a == b for a, b in zip(us, vs))
    pairs = [(a, b) if directed or a <= b else (b, a) for a, b in zip(us, vs) if a != b]
    dups = len(set(pairs)) != len(pairs)
    degree: dict[str, int] = {}
    for a, b in set(pairs):
        degree[a] = degree.get(a, 0) + 1
        degree[b] = degree.get(b, 0) + 1
    degs = sorted(degree.values()) or [1]
    q = degs[min(len(degs) - 1, int(math.ceil(_DRAFT_DEGREE_QUANTILE * len(degs))) - 1)]
    cap = max(8, int(math.ceil(q / 8) * 8))
    node_count = None
    nodes_kind: Literal["public", "bought"] = "public"
    if node_ids is None:
        if ints:
            node_count = max(2, max(int(t) for t in (*us, *vs)) + 1)
        else:
            nodes_kind = "bought"
    spec = GraphSpec(directed=directed, nodes=nodes_kind, node_count=node_count, node_key=key or "node",
                     id_type="integer" if ints else "string", edge_format=fmt, source=src_col, target=dst_col,
                     ignore=ignore, self_loops="drop" if loops else "error", duplicates="merge" if dups else "error",
                     max_degree=cap)
    return Schema(columns=tuple(cols), name=name, drafted_from_data=True, kind="graph", graph=spec)


def _is_int(t: str) -> bool:
    try:
        int(t)
    except ValueError:
        return False
    return True


def draft_yaml(schema: Schema) -> str:
    """The drafted schema as YAML, with the warning as a comment block and as a key."""
    warning = (SEQUENCE_DRAFT_WARNING if schema.is_sequential else GRAPH_DRAFT_WARNING if schema.is_graph
               else DRAFT_WARNING)
    banner = "\n".join("# " + line for line in _wrap(warning))
    body = schema.to_dict()
    body = {"warning": warning, **body}
    return banner + "\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)


def _wrap(text: str, width: int = 96) -> list[str]:
    return textwrap.wrap(text, width)
