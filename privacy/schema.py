"""The public schema: per column its type and its public domain.

A schema is what a steward declares about the data without looking at it (or after reviewing a
draft): category lists, numeric bounds, and how numeric columns are discretised for marginal
generators. Everything a generator needs to know about the domain comes from here, never from the
data (DESIGN.md section 4, rules 1 and 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from privacy.errors import InputError
from privacy.graph_spec import GraphSpec
from privacy.sequence_spec import SequenceSpec
from privacy.strict_yaml import YamlError, load_yaml

ColumnType = Literal["categorical", "integer", "float"]
_TYPES = ("categorical", "integer", "float")
_COLUMN_KEYS = {"type", "categories", "other", "min", "max", "bins", "cuts", "description", "nullable"}
_SCHEMA_KEYS = {"kind", "name", "columns", "target", "drafted_from_data", "warning", "description", "sequence",
                "graph"}
KINDS = ("tabular", "sequential", "graph")
DEFAULT_BINS = 16
#: integer bounds and cuts must be exact in a float64 (schemas carry them as floats) and fit an int64
MAX_EXACT_INT = 2**53


@dataclass(frozen=True, kw_only=True)
class Column:
    """One column of the public schema."""

    name: str
    type: ColumnType
    #: Categorical: the public list of categories, as strings, in the order used for encoding.
    categories: tuple[str, ...] = ()
    #: Categorical: the category out-of-domain values are mapped to (must be in ``categories``);
    #: without it, an out-of-domain value is an input error.
    other: str | None = None
    #: Numeric: public bounds; values outside are clipped to them.
    min: float | None = None
    max: float | None = None
    #: Numeric: number of equal-width bins between min and max for marginal generators.
    bins: int = DEFAULT_BINS
    #: Numeric: explicit public cut points strictly inside (min, max], instead of equal-width bins;
    #: bins are [min, c1), [c1, c2), ..., [ck, max]. Lets a steward give a value such as 0 a bin of
    #: its own from public knowledge (most people report no capital gain) without reading the data.
    cuts: tuple[float, ...] = ()
    #: Missing values allowed (sequential data only, so far): a missing value is a state of its own
    #: for every generator and audit (a lab test not taken is information), never imputed.
    nullable: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        where = f"schema column {self.name!r}"
        if not isinstance(self.nullable, bool):
            raise InputError(f"{where}: 'nullable' must be true or false")
        if self.type not in _TYPES:
            raise InputError(f"{where}: unknown type {self.type!r} (expected one of {', '.join(_TYPES)})")
        if self.type == "categorical":
            if len(self.categories) < 1:
                raise InputError(f"{where}: a categorical column needs a non-empty 'categories' list")
            if len(set(self.categories)) != len(self.categories):
                raise InputError(f"{where}: 'categories' has duplicates")
            if self.other is not None and self.other not in self.categories:
                raise InputError(f"{where}: 'other' must be one of the categories")
            if self.min is not None or self.max is not None:
                raise InputError(f"{where}: a categorical column takes no 'min'/'max'")
        else:
            if self.min is None or self.max is None:
                raise InputError(f"{where}: a numeric column needs public 'min' and 'max'")
            if not (math.isfinite(self.min) and math.isfinite(self.max)) or self.min >= self.max:
                raise InputError(f"{where}: needs finite min < max")
            if self.type == "integer" and not (float(self.min).is_integer() and float(self.max).is_integer()):
                raise InputError(f"{where}: an integer column needs integer 'min' and 'max'")
            if self.type == "integer" and max(abs(self.min), abs(self.max)) > MAX_EXACT_INT:
                raise InputError(f"{where}: integer 'min' and 'max' must lie in [-2**53, 2**53]")
            if self.categories:
                raise InputError(f"{where}: a numeric column takes no 'categories'")
            if not isinstance(self.bins, int) or self.bins < 2 or self.bins > 1000:
                raise InputError(f"{where}: 'bins' must be an integer in [2, 1000]")
            if self.cuts:
                c = list(self.cuts)
                if any(not math.isfinite(x) for x in c) or any(b <= a for a, b in zip(c, c[1:])):
                    raise InputError(f"{where}: 'cuts' must be finite and strictly increasing")
                if c[0] <= self.min or c[-1] > self.max or len(c) > 999:
                    raise InputError(f"{where}: 'cuts' must lie in (min, max] (at most 999 of them)")
                if self.type == "integer" and any(not float(x).is_integer() for x in c):
                    raise InputError(f"{where}: 'cuts' of an integer column must be integers")

    @property
    def is_numeric(self) -> bool:
        return self.type != "categorical"

    def bin_edges(self) -> list[float]:
        """Equal-width bin edges over the public bounds (integer columns: integer-aligned)."""
        assert self.min is not None and self.max is not None
        lo, hi = float(self.min), float(self.max)
        if self.cuts:
            if self.type == "integer":
                return [lo - 0.5, *(float(c) - 0.5 for c in self.cuts), hi + 0.5]
            return [lo, *(float(c) for c in self.cuts), hi]
        if self.type == "integer":
            span = int(hi - lo) + 1
            nbins = min(self.bins, span)
            step = span / nbins
            return [lo - 0.5 + i * step for i in range(nbins + 1)]
        step = (hi - lo) / self.bins
        return [lo + i * step for i in range(self.bins + 1)]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.description:
            out["description"] = self.description
        if self.type == "categorical":
            out["categories"] = list(self.categories)
            if self.other is not None:
                out["other"] = self.other
        else:
            out["min"] = _num(self.min)
            out["max"] = _num(self.max)
            if self.cuts:
                out["cuts"] = [_num(c) for c in self.cuts]
            else:
                out["bins"] = self.bins
        if self.nullable:
            out["nullable"] = True
        return out


def _num(x: float | None) -> int | float | None:
    if x is not None and float(x).is_integer():
        return int(x)
    return x


@dataclass(frozen=True, kw_only=True)
class Schema:
    """The public description of a table. Immutable; validated at construction."""

    columns: tuple[Column, ...]
    kind: Literal["tabular", "sequential", "graph"] = "tabular"
    #: ``kind: sequential`` only: the entity key, the order column and the contribution bounds.
    sequence: SequenceSpec | None = None
    #: ``kind: graph`` only: edge file layout, node set, unit of privacy; ``columns`` are node attributes.
    graph: GraphSpec | None = None
    name: str = ""
    #: The column a utility audit predicts, if the steward names one.
    target: str | None = None
    #: True when ``schema infer`` drafted it from the data: not public until reviewed.
    drafted_from_data: bool = False
    description: str = ""
    _index: dict[str, Column] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown schema kind {self.kind!r} (supported: {', '.join(KINDS)})")
        if not self.columns and self.kind != "graph":
            raise InputError("schema has no columns")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise InputError("schema has duplicate column names")
        if self.target is not None and self.target not in names:
            raise InputError(f"schema target {self.target!r} is not a column")
        if self.kind != "graph" and self.graph is not None:
            raise InputError(f"a {self.kind} schema takes no 'graph' block (set kind: graph)")
        if self.kind == "graph" and self.sequence is not None:
            raise InputError("a graph schema takes no 'sequence' block (set kind: sequential)")
        if self.kind == "graph":
            if self.graph is None:
                raise InputError("a graph schema needs a 'graph' block (directed, nodes, edges)")
            self.graph.check_columns(names)
            if self.target is not None:
                raise InputError("a graph schema takes no 'target' (no utility model is trained on graphs yet)")
            nullable = [c.name for c in self.columns if c.nullable]
            if nullable:
                raise InputError(
                    f"schema columns {', '.join(nullable)}: missing node attributes ('nullable') are not supported yet"
                )
        elif self.kind == "tabular":
            if self.sequence is not None:
                raise InputError("a tabular schema takes no 'sequence' block (set kind: sequential)")
            nullable = [c.name for c in self.columns if c.nullable]
            if nullable:
                raise InputError(
                    f"schema columns {', '.join(nullable)}: missing values ('nullable') are supported for "
                    f"sequential data only, not yet for tables"
                )
        else:
            if self.sequence is None:
                raise InputError("a sequential schema needs a 'sequence' block (entity, order, max_events)")
            self.sequence.check_columns(names)
            if self.target is not None and self.target not in self.sequence.static:
                raise InputError(f"schema target {self.target!r} must be a static (per-entity) column")
        self._index.update({c.name: c for c in self.columns})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def is_sequential(self) -> bool:
        return self.kind == "sequential"

    @property
    def is_graph(self) -> bool:
        return self.kind == "graph"

    @property
    def gspec(self) -> GraphSpec:
        """The graph block; ``InputError`` for a schema of another kind."""
        if self.graph is None:
            raise InputError(f"a {self.kind} schema has no graph block")
        return self.graph

    @property
    def seq(self) -> SequenceSpec:
        """The sequence block; ``InputError`` for a schema of another kind."""
        if self.sequence is None:
            raise InputError(f"a {self.kind} schema has no sequence block")
        return self.sequence

    @property
    def static_columns(self) -> list[Column]:
        """Sequential: the per-entity columns, in schema order."""
        return [c for c in self.columns if c.name in self.seq.static]

    @property
    def event_columns(self) -> list[Column]:
        """Sequential: the per-event columns, in schema order."""
        return [c for c in self.columns if c.name not in self.seq.static]

    def column(self, name: str) -> Column:
        try:
            return self._index[name]
        except KeyError:
            raise InputError(f"schema has no column {name!r}") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.name:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        if self.target:
            out["target"] = self.target
        if self.drafted_from_data:
            out["drafted_from_data"] = True
        if self.sequence is not None:
            out["sequence"] = self.sequence.to_dict()
        if self.graph is not None:
            out["graph"] = self.graph.to_dict()
        out["columns"] = {c.name: c.to_dict() for c in self.columns}
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> "Schema":
        if not isinstance(raw, dict):
            raise InputError("schema must be a mapping with a 'columns' key")
        unknown = set(raw) - _SCHEMA_KEYS
        if unknown:
            raise InputError(f"schema has unknown keys: {', '.join(sorted(map(str, unknown)))}")
        cols_raw = raw.get("columns")
        if raw.get("kind") == "graph" and cols_raw in (None, {}):
            cols_raw = {}  # a graph without node attributes
        elif not isinstance(cols_raw, dict) or not cols_raw:
            raise InputError("schema 'columns' must be a non-empty mapping of name -> column")
        columns = []
        for name, spec in cols_raw.items():
            if isinstance(name, bool) or not isinstance(name, (str, int, float)) or str(name) == "":
                raise InputError(
                    "schema column names must be non-empty text (quote names such as yes, no, null or dates)"
                )
            if not isinstance(spec, dict):
                raise InputError(f"schema column {name!r} must be a mapping")
            unknown = set(spec) - _COLUMN_KEYS
            if unknown:
                raise InputError(f"schema column {name!r} has unknown keys: {', '.join(sorted(map(str, unknown)))}")
            cats = _absent_is(spec.get("categories"), ())
            if not isinstance(cats, (list, tuple)):
                raise InputError(f"schema column {name!r}: 'categories' must be a list")
            if any(isinstance(c, bool) or c is None for c in cats):
                raise InputError(
                    f"schema column {name!r}: quote categories such as yes/no/true/null (YAML reads them as booleans)"
                )
            if any(isinstance(c, (list, tuple, dict)) for c in (*cats, spec.get("other"))):
                raise InputError(f"schema column {name!r}: 'categories' and 'other' must be text, not lists or mappings")
            cuts = _absent_is(spec.get("cuts"), ())
            if not isinstance(cuts, (list, tuple)):
                raise InputError(f"schema column {name!r}: 'cuts' must be a list of numbers")
            try:
                columns.append(
                    Column(
                        name=str(name),
                        type=spec.get("type"),  # type: ignore[arg-type]  # checked in __post_init__
                        # data values are compared after stripping spaces; so are categories
                        categories=tuple(str(c).strip() for c in cats),
                        other=None if spec.get("other") is None else str(spec["other"]),
                        min=_bound(spec.get("min"), name, "min"),
                        max=_bound(spec.get("max"), name, "max"),
                        bins=spec.get("bins", DEFAULT_BINS),
                        cuts=tuple(_bound(x, name, "cuts") for x in cuts),  # type: ignore[misc]
                        nullable=spec.get("nullable", False),
                        description=_text(spec.get("description", ""), f"schema column {name!r}: 'description'"),
                    )
                )
            except (TypeError, ValueError) as exc:
                raise InputError(f"schema column {name!r}: {exc}") from exc
        kind = raw.get("kind", "tabular")
        seq_raw = raw.get("sequence")
        graph_raw = raw.get("graph")
        drafted = raw.get("drafted_from_data", False)
        if not isinstance(drafted, bool):
            raise InputError("schema 'drafted_from_data' must be true or false")
        target = raw.get("target")
        if target is not None and (isinstance(target, bool) or not isinstance(target, (str, int, float))):
            raise InputError("schema 'target' must be a column name")
        return cls(
            columns=tuple(columns),
            kind=kind,
            sequence=None if seq_raw is None else SequenceSpec.from_dict(seq_raw),
            graph=None if graph_raw is None else GraphSpec.from_dict(graph_raw),
            name=_text(raw.get("name", ""), "schema 'name'"),
            target=None if target is None else str(target),
            drafted_from_data=drafted,
            description=_text(raw.get("description", ""), "schema 'description'"),
        )

    @classmethod
    def load(cls, path: str | Path) -> "Schema":
        p = Path(path)
        if not p.is_file():
            raise InputError(f"schema file not found: {p}")
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"schema file {p} is not UTF-8 text") from None
        except OSError as exc:
            raise InputError(f"cannot read schema file {p} ({exc.strerror})") from None
        try:
            raw = load_yaml(text)
        except YamlError as exc:
            raise InputError(f"schema file {p} is not valid YAML/JSON: {exc}") from None
        return cls.from_dict(raw)

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _bound(v: Any, column: Any, key: str) -> float | None:
    """A numeric bound or cut as a float; booleans (YAML's yes/no) and numbers beyond float are refused."""
    if v is None:
        return None
    if isinstance(v, bool):
        raise InputError(f"schema column {column!r}: {key!r} must be a number, not true/false")
    try:
        return float(v)
    except OverflowError:
        raise InputError(f"schema column {column!r}: {key!r} is too large") from None


def _text(v: Any, where: str) -> str:
    """A name or description: text (a bare number is read as its text), never a list or mapping."""
    if v is None:
        return ""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise InputError(f"{where} must be text")
    return str(v)


def _absent_is(value: Any, default: Any) -> Any:
    """``default`` for a key left out or null; any other value as given (``[]``, ``""`` or 0 are not "absent")."""
    return default if value is None else value
