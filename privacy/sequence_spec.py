"""The public contribution bounds of sequential data: entity, order, event cap, gap bounds.

The unit of privacy for sequences is one entity with all its events (DESIGN.md section 4, rule 3).
What one entity can contribute must be bounded by public numbers, never read from the data: at
most ``max_events`` events (longer sequences are truncated by the stated rule), an order column
with public bounds, and gaps between consecutive events within public bounds (generators clip
gaps to them). The ``sequence`` block of a schema holds them:

.. code-block:: yaml

    kind: sequential
    sequence:
      entity: account_id
      order: {column: date, type: date, format: "%Y-%m-%d", min: "1993-01-01", max: "1994-03-30",
              gap_min: 0, gap_max: 120, ties: true}
      max_events: 64
      truncate: first
      static: [frequency, district]
      state: [type, operation]
    columns: ...   # every static and event column with its public domain

Order values are handled as integers: the step itself for ``type: integer``, days since
1970-01-01 for ``type: date``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from privacy.errors import InputError

_SEQ_KEYS = {"entity", "order", "max_events", "truncate", "static", "state"}
_ORDER_KEYS = {"column", "type", "format", "min", "max", "gap_min", "gap_max", "ties"}
MAX_EVENTS_LIMIT = 10_000
EPOCH = dt.date(1970, 1, 1)
ISO = "%Y-%m-%d"


@dataclass(frozen=True, kw_only=True)
class SequenceSpec:
    """Entity key, order column and the public bounds on one entity's contribution."""

    entity: str
    order: str
    order_type: Literal["integer", "date"] = "integer"
    #: ``type: date``: the strptime format of the order column in the data files
    date_format: str = ISO
    #: public bounds of the order values (days since 1970-01-01 for dates); values outside are clipped
    order_min: int
    order_max: int
    #: public bounds of the gap between consecutive events of one entity (order units)
    gap_min: int = 0
    gap_max: int
    #: whether consecutive events of one entity may share an order value (kept in file order)
    ties: bool = False
    #: the per-entity event cap; longer sequences are truncated by ``truncate``
    max_events: int
    #: "first": keep an entity's first ``max_events`` events in order; "last": its last ones
    truncate: Literal["first", "last"] = "first"
    static: tuple[str, ...] = ()
    #: the event columns whose (discretised) values form a Markov state (``dpmarkov``); empty means
    #: the categorical event columns
    state: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = "schema 'sequence'"
        for name, value in (("entity", self.entity), ("order column", self.order)):
            if not isinstance(value, str) or not value:
                raise InputError(f"{where}: needs an {name} name")
        if self.entity == self.order:
            raise InputError(f"{where}: the entity and order columns must differ")
        if self.order_type not in ("integer", "date"):
            raise InputError(f"{where}: order type must be 'integer' or 'date', not {self.order_type!r}")
        for name in ("order_min", "order_max", "gap_min", "gap_max", "max_events"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise InputError(f"{where}: {name} must be an integer")
        if self.order_min >= self.order_max:
            raise InputError(f"{where}: order needs min < max")
        if self.gap_min < 0 or self.gap_min > self.gap_max:
            raise InputError(f"{where}: order needs 0 <= gap_min <= gap_max")
        if self.gap_max > self.order_max - self.order_min:
            raise InputError(f"{where}: gap_max is larger than the order column's whole range")
        if not self.ties and self.gap_min == 0:
            raise InputError(f"{where}: gap_min 0 needs 'ties: true' (equal order values within an entity)")
        if self.ties and self.gap_min > 0:
            raise InputError(f"{where}: 'ties: true' needs gap_min 0")
        if not 1 <= self.max_events <= MAX_EVENTS_LIMIT:
            raise InputError(f"{where}: max_events must be in [1, {MAX_EVENTS_LIMIT}]")
        if self.truncate not in ("first", "last"):
            raise InputError(f"{where}: truncate must be 'first' or 'last'")
        if self.order_type == "date":
            # the format must write a date that it can read back (strptime refuses unknown directives
            # and a lone '%'; a format that reads back another date cannot order events by day)
            try:
                day = dt.date(2001, 2, 3)
                ok = bool(self.date_format) and parse_date(day.strftime(self.date_format), self.date_format) == (
                    day - EPOCH).days
            except (ValueError, TypeError):
                ok = False
            if not ok:
                raise InputError(f"{where}: bad date format {self.date_format!r} (it must write and read back a "
                                 "year, month and day, e.g. '%Y-%m-%d')")
        if len(set(self.static)) != len(self.static) or len(set(self.state)) != len(self.state):
            raise InputError(f"{where}: 'static' and 'state' must not repeat a column")
        if set(self.static) & set(self.state):
            raise InputError(f"{where}: a column cannot be both static and a state column")

    def check_columns(self, names: list[str]) -> None:
        """Check the block against the schema's column names (entity and order are not columns)."""
        where = "schema 'sequence'"
        for key in (self.entity, self.order):
            if key in names:
                raise InputError(
                    f"{where}: {key!r} is the entity or order column; do not list it under 'columns'"
                )
        unknown = [c for c in (*self.static, *self.state) if c not in names]
        if unknown:
            raise InputError(f"{where}: 'static'/'state' name unknown columns: {', '.join(unknown)}")
        if not [n for n in names if n not in self.static]:
            raise InputError(f"{where}: needs at least one event (non-static) column")

    # -- the order column ------------------------------------------------------------------------

    def format_order(self, value: int) -> str:
        """An order value as the data files write it (ISO dates in outputs)."""
        if self.order_type == "date":
            return (EPOCH + dt.timedelta(days=int(value))).isoformat()
        return str(int(value))

    def unit_text(self) -> str:
        return "days" if self.order_type == "date" else "steps"

    def privacy_unit(self) -> str:
        """The unit of privacy in words, for cards and statements."""
        rule = "its first" if self.truncate == "first" else "its last"
        return (
            f"one entity ({self.entity}) with all its events: at most {self.max_events} events per entity "
            f"(longer sequences truncated to {rule} {self.max_events}), gaps between events clipped to "
            f"[{self.gap_min}, {self.gap_max}] {self.unit_text()} (add/remove one entity)"
        )

    def to_dict(self) -> dict[str, Any]:
        order: dict[str, Any] = {"column": self.order, "type": self.order_type}
        if self.order_type == "date":
            order["format"] = self.date_format
            order["min"] = self.format_order(self.order_min)
            order["max"] = self.format_order(self.order_max)
        else:
            order["min"] = self.order_min
            order["max"] = self.order_max
        order.update(gap_min=self.gap_min, gap_max=self.gap_max, ties=self.ties)
        out: dict[str, Any] = {"entity": self.entity, "order": order, "max_events": self.max_events,
                               "truncate": self.truncate, "static": list(self.static)}
        if self.state:
            out["state"] = list(self.state)
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> "SequenceSpec":
        where = "schema 'sequence'"
        if not isinstance(raw, dict):
            raise InputError(f"{where} must be a mapping (entity, order, max_events, ...)")
        unknown = set(raw) - _SEQ_KEYS
        if unknown:
            raise InputError(f"{where} has unknown keys: {', '.join(sorted(map(str, unknown)))}")
        order = raw.get("order")
        if not isinstance(order, dict):
            raise InputError(f"{where}: 'order' must be a mapping (column, type, min, max, gap_min, gap_max)")
        unknown = set(order) - _ORDER_KEYS
        if unknown:
            raise InputError(f"{where}: 'order' has unknown keys: {', '.join(sorted(map(str, unknown)))}")
        for key in ("column", "min", "max", "gap_max"):
            if order.get(key) is None:
                raise InputError(f"{where}: 'order' needs {key!r}")
        if raw.get("entity") is None or raw.get("max_events") is None:
            raise InputError(f"{where}: needs 'entity' and 'max_events'")
        otype = order.get("type", "integer")
        fmt = order.get("format", ISO)
        if not isinstance(fmt, str):
            raise InputError(f"{where}: the order 'format' must be text such as '%Y-%m-%d'")
        static = _absent_is(raw.get("static"), [])
        state = _absent_is(raw.get("state"), [])
        if not isinstance(static, list) or not isinstance(state, list):
            raise InputError(f"{where}: 'static' and 'state' must be lists of column names")
        if otype == "date":
            lo, hi = _date_bound(order["min"], "min"), _date_bound(order["max"], "max")
        else:
            lo, hi = _int(order["min"], "order min"), _int(order["max"], "order max")
        return cls(
            entity=_name(raw["entity"], "entity"),
            order=_name(order["column"], "order column"),
            order_type=otype,
            date_format=fmt,
            order_min=lo,
            order_max=hi,
            gap_min=_int(order.get("gap_min", 0), "gap_min"),
            gap_max=_int(order["gap_max"], "gap_max"),
            ties=_bool(order.get("ties", False), "ties"),
            max_events=_int(raw["max_events"], "max_events"),
            truncate=raw.get("truncate", "first"),
            static=tuple(_name(c, "'static' entry") for c in static),
            state=tuple(_name(c, "'state' entry") for c in state),
        )


def parse_date(text: str, fmt: str) -> int:
    """Days since 1970-01-01 of a date written in ``fmt``."""
    return (dt.datetime.strptime(text, fmt).date() - EPOCH).days


def _date_bound(v: Any, name: str) -> int:
    if isinstance(v, dt.datetime):
        v = v.date()
    if isinstance(v, dt.date):
        return (v - EPOCH).days
    try:
        return parse_date(str(v), ISO)
    except ValueError:
        raise InputError(f"schema 'sequence': order {name} must be an ISO date (YYYY-MM-DD)") from None


def _name(v: Any, what: str) -> str:
    """A column name: text (a bare number is read as its text), never a list, mapping or yes/no/null."""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise InputError(f"schema 'sequence': the {what} must be a column name (quote yes/no/null)")
    return str(v)


def _int(v: Any, name: str) -> int:
    if isinstance(v, bool):
        raise InputError(f"schema 'sequence': {name} must be an integer")
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"schema 'sequence': {name} must be an integer") from None
    if not f.is_integer() or abs(f) > 2**53:
        raise InputError(f"schema 'sequence': {name} must be an integer")
    return int(f)


def _bool(v: Any, name: str) -> bool:
    if not isinstance(v, bool):
        raise InputError(f"schema 'sequence': {name} must be true or false")
    return v


def _absent_is(value: Any, default: Any) -> Any:
    """``default`` for a key left out or null; any other value as given (``[]``, ``""`` or 0 are not "absent")."""
    return default if value is None else value
