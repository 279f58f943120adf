"""Sequential data: the schema's sequence block, conforming events to it, the entity split, drafts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from privacy.errors import InputError
from privacy.infer import infer_sequence_schema
from privacy.schema import Schema
from privacy.sequences import conform_sequences, split_entities
from privacy.table import read_raw

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="module")
def pbc_raw() -> dict[str, Any]:
    return yaml.safe_load((DATA / "pbcseq_schema.yaml").read_text())


@pytest.fixture(scope="module")
def pbc_schema(pbc_raw: dict[str, Any]) -> Schema:
    return Schema.from_dict(pbc_raw)


@pytest.fixture(scope="module")
def pbc_events() -> pl.DataFrame:
    return read_raw(DATA / "pbcseq.csv")


@pytest.fixture(scope="module")
def berka_schema() -> Schema:
    return Schema.load(DATA / "berka_schema.yaml")


def _with(raw: dict[str, Any], **seq: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for k, v in seq.items():
        if k in ("gap_min", "gap_max", "ties", "min", "max", "type", "format"):
            out["sequence"]["order"][k] = v
        else:
            out["sequence"][k] = v
    return out


# -- the schema ----------------------------------------------------------------------------------


def test_schema_round_trips_and_names_the_parts(pbc_schema: Schema, berka_schema: Schema) -> None:
    for schema in (pbc_schema, berka_schema):
        again = Schema.from_dict(yaml.safe_load(schema.dump_yaml()))
        assert again == schema
        assert again.seq == schema.seq
    assert [c.name for c in pbc_schema.static_columns] == ["futime", "status", "trt", "age", "sex"]
    assert "stage" in [c.name for c in pbc_schema.event_columns]
    spec = berka_schema.seq
    assert spec.order_type == "date" and spec.ties and spec.max_events == 64
    assert spec.format_order(spec.order_min) == "1993-01-01"
    unit = spec.privacy_unit()
    assert "account_id" in unit and "64 events" in unit and "first" in unit


@pytest.mark.parametrize(
    "change, message",
    [
        ({"max_events": 0}, "max_events"),
        ({"max_events": 2.5}, "max_events must be an integer"),
        ({"gap_min": 0}, "ties: true"),
        ({"ties": True}, "needs gap_min 0"),
        ({"gap_max": 10_000}, "whole range"),
        ({"min": 100, "max": 50}, "min < max"),
        ({"type": "float"}, "order type"),
        ({"truncate": "middle"}, "truncate"),
        ({"static": ["futime", "nope"]}, "unknown columns"),
        ({"state": ["futime"]}, "both static and a state"),
        ({"entity": "day"}, "must differ"),
        ({"ties": "yes"}, "true or false"),
    ],
)
def test_bad_sequence_blocks_are_refused_with_one_line(pbc_raw: dict[str, Any], change: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        Schema.from_dict(_with(pbc_raw, **change))
    assert "\n" not in str(info.value)


def test_schema_structure_errors(pbc_raw: dict[str, Any]) -> None:
    no_block = copy.deepcopy(pbc_raw)
    del no_block["sequence"]
    with pytest.raises(InputError, match="needs a 'sequence' block"):
        Schema.from_dict(no_block)
    tabular = copy.deepcopy(pbc_raw)
    tabular["kind"] = "tabular"
    with pytest.raises(InputError, match="takes no 'sequence' block"):
        Schema.from_dict(tabular)
    listed_key = copy.deepcopy(pbc_raw)
    listed_key["columns"]["id"] = {"type": "integer", "min": 0, "max": 400}
    with pytest.raises(InputError, match="do not list it under 'columns'"):
        Schema.from_dict(listed_key)
    bad_target = copy.deepcopy(pbc_raw)
    bad_target["target"] = "stage"
    with pytest.raises(InputError, match="must be a static"):
        Schema.from_dict(bad_target)
    graph = copy.deepcopy(pbc_raw)
    graph["kind"] = "graph"
    with pytest.raises(InputError, match="takes no 'sequence' block"):
        Schema.from_dict(graph)
    extra = copy.deepcopy(pbc_raw)
    extra["sequence"]["order"]["unit"] = "days"
    with pytest.raises(InputError, match="unknown keys: unit"):
        Schema.from_dict(extra)


def test_nullable_columns_are_refused_for_tables() -> None:
    raw = {"columns": {"a": {"type": "integer", "min": 0, "max": 9, "nullable": True}}}
    with pytest.raises(InputError, match="sequential data only"):
        Schema.from_dict(raw)


# -- conforming ----------------------------------------------------------------------------------


def test_pbcseq_conforms_with_missing_values_kept(pbc_schema: Schema, pbc_events: pl.DataFrame) -> None:
    data, report = conform_sequences(pbc_events, None, pbc_schema)
    assert data.n_entities == 312 and report.entities == 312
    assert data.events.height == 1945 and report.truncated_events == 0
    assert data.lengths().sum() == 1945 and data.lengths().max() <= 16
    # chol is missing on 821 visits in the source: missing stays missing (nullable), never imputed
    assert data.events.get_column("chol").null_count() == 821
    assert data.statics.columns == ["id", "futime", "status", "trt", "age", "sex"]
    assert data.events.get_column("day").dtype == pl.Int64
    # statics and events list the entities in the same order
    first = data.events.group_by("id", maintain_order=True).first().get_column("id")
    assert first.to_list() == data.statics.get_column("id").to_list()
    # the long table goes back through conform unchanged
    again, r2 = conform_sequences(data.to_long(), None, pbc_schema)
    assert r2.total_changed == 0
    assert again.events.equals(data.events) and again.statics.equals(data.statics)


def test_berka_static_table_dates_ties_and_truncation(berka_schema: Schema) -> None:
    events = read_raw(DATA / "berka_transactions.csv")
    statics = read_raw(DATA / "berka_accounts.csv")
    data, report = conform_sequences(events, statics, berka_schema)
    lengths = events.group_by("account_id").len().get_column("len").to_numpy().astype(np.int64)
    assert report.entities == 150 == data.n_entities
    # truncation to max_events = 64 keeps the first 64 events of each longer account
    assert report.truncated_entities == int((lengths > 64).sum()) > 0
    assert report.truncated_events == int(np.maximum(lengths - 64, 0).sum())
    assert data.lengths().max() == 64
    acc = data.statics.get_column("account_id")[0]
    kept = data.events.filter(pl.col("account_id") == acc).get_column("date").to_list()
    raw_dates = events.filter(pl.col("account_id") == acc).get_column("date").to_list()
    assert [berka_schema.seq.format_order(d) for d in kept] == raw_dates[:64]
    # ties (several transactions a day) are allowed by this schema
    assert (data.gaps().drop_nulls() == 0).any()
    # an 'operation' blank in the source is missing, not a category
    assert data.events.get_column("operation").null_count() > 0
    # 'last' keeps the last events instead
    raw = yaml.safe_load((DATA / "berka_schema.yaml").read_text())
    raw["sequence"]["truncate"] = "last"
    last, _ = conform_sequences(events, statics, Schema.from_dict(raw))
    kept_last = last.events.filter(pl.col("account_id") == acc).get_column("date").to_list()
    assert [berka_schema.seq.format_order(d) for d in kept_last] == raw_dates[-min(64, len(raw_dates)):]


def test_static_table_keys_are_checked(berka_schema: Schema) -> None:
    events = read_raw(DATA / "berka_transactions.csv")
    statics = read_raw(DATA / "berka_accounts.csv")
    with pytest.raises(InputError, match="no row in the static table"):
        conform_sequences(events, statics.slice(1), berka_schema)
    with pytest.raises(InputError, match="appear more than once"):
        conform_sequences(events, pl.concat([statics, statics.head(2)]), berka_schema)
    extra = pl.concat([statics, pl.DataFrame({"account_id": ["999999"], "district_id": ["1"],
                                              "frequency": ["POPLATEK TYDNE"]})])
    _, report = conform_sequences(events, extra, berka_schema)
    assert report.entities_without_events == 1 and report.entities == 150


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("id")).alias("id")),
         "no entity key"),
        (lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("0")).otherwise(pl.col("day"))
                                    .alias("day")), "repeated 'day' values"),
        (lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("-1")).otherwise(pl.col("day"))
                                    .alias("day")), "not in 'day' order"),
        (lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("soon")).otherwise(pl.col("day"))
                                    .alias("day")), "not integers"),
        (lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("m")).otherwise(pl.col("sex"))
                                    .alias("sex")), "disagree across their rows"),
        (lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("stage"))
                                    .alias("stage")), "missing values"),
        (lambda df: df.drop("stage"), "missing columns: stage"),
        (lambda df: df.with_columns(pl.lit("x").alias("extra")), "not in the schema: extra"),
    ],
)
def test_bad_events_get_one_clear_line(pbc_schema: Schema, pbc_events: pl.DataFrame, edit: Any,
                                       message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        conform_sequences(edit(pbc_events), None, pbc_schema)
    text = str(info.value)
    assert "\n" not in text
    # counts, never the values
    assert "soon" not in text


def test_out_of_domain_values_are_clipped_and_counted(pbc_schema: Schema, pbc_events: pl.DataFrame) -> None:
    # a single-visit patient: moving its one visit far out keeps its events in order
    single = pbc_events.group_by("id").len().filter(pl.col("len") == 1).get_column("id")[0]
    df = pbc_events.with_columns(
        pl.when(pl.col("id") == single).then(pl.lit("90000")).otherwise(pl.col("day")).alias("day"),
        pl.when(pl.col("id") == single).then(pl.lit("99.5")).otherwise(pl.col("age")).alias("age"),
    )
    data, report = conform_sequences(df, None, pbc_schema)
    # an event outside the order bounds is dropped, and the entity with it (it had no other)
    assert report.events_outside_order == 1 and report.entities_dropped == 1
    assert data.n_entities == 311 and single not in data.statics.get_column("id").to_list()
    assert "day" not in report.clipped
    # a static value outside its bounds is clipped and counted (on another patient)
    df = pbc_events.with_columns(
        pl.when(pl.col("id") == single).then(pl.lit("99.5")).otherwise(pl.col("age")).alias("age"),
    )
    data, report = conform_sequences(df, None, pbc_schema)
    assert report.clipped["age"] == 1 and data.statics.get_column("age").max() == 80


def test_order_values_out_of_bounds_never_create_ties(pbc_raw: dict[str, Any], pbc_events: pl.DataFrame) -> None:
    # days 0, 192 of patient 1 with an order max of 100: clipping would give 0, 100 and a later
    # visit at 100 too; dropping keeps the schema's no-ties rule true of the output
    raw = copy.deepcopy(pbc_raw)
    raw["sequence"]["order"].update(max=400, gap_max=400)
    schema = Schema.from_dict(raw)
    data, report = conform_sequences(pbc_events, None, schema)
    assert report.events_outside_order > 0
    assert data.events.get_column("day").max() <= 400
    again, r2 = conform_sequences(data.to_long(), None, schema)
    assert r2.total_changed == 0 and again.events.equals(data.events)


def test_entity_split_is_by_entity_and_seeded(pbc_schema: Schema, pbc_events: pl.DataFrame) -> None:
    data, _ = conform_sequences(pbc_events, None, pbc_schema)
    train, holdout = split_entities(data, 0.3, 11)
    ids_t = set(train.statics.get_column("id").to_list())
    ids_h = set(holdout.statics.get_column("id").to_list())
    assert not ids_t & ids_h and len(ids_t | ids_h) == 312
    assert set(train.events.get_column("id").to_list()) == ids_t
    assert train.events.height + holdout.events.height == data.events.height
    assert 0.2 < len(ids_h) / 312 < 0.4
    again, _ = split_entities(data, 0.3, 11)
    assert again.statics.equals(train.statics)
    other, _ = split_entities(data, 0.3, 12)
    assert not other.statics.equals(train.statics)
    # removing one entity changes no other entity's side (coins follow sorted keys; the removed
    # entity's coin goes with it only when it is the last key, so test with the last key)
    last = data.statics.get_column("id")[-1]
    smaller = data.take((data.statics.get_column("id") != last).to_numpy())
    t2, _ = split_entities(smaller, 0.3, 11)
    assert set(t2.statics.get_column("id").to_list()) == ids_t - {last}


# -- drafting ------------------------------------------------------------------------------------


def test_infer_drafts_a_valid_sequential_schema(tmp_path: Path) -> None:
    schema = infer_sequence_schema(DATA / "pbcseq.csv", entity="id", order="day",
                                   static=("futime", "status", "trt", "age", "sex"))
    assert schema.drafted_from_data and schema.is_sequential
    spec = schema.seq
    assert spec.order_type == "integer" and not spec.ties and spec.gap_min == 1
    # the drafted cap: the 95th percentile of lengths rounded up to a multiple of 8
    assert spec.max_events % 8 == 0 and spec.max_events >= 8
    assert schema.column("chol").nullable and not schema.column("stage").nullable
    data, _ = conform_sequences(read_raw(DATA / "pbcseq.csv"), None, schema)
    assert data.n_entities == 312
    berka = infer_sequence_schema(DATA / "berka_transactions.csv", entity="account_id", order="date",
                                  statics_path=DATA / "berka_accounts.csv")
    assert berka.seq.order_type == "date" and berka.seq.ties and berka.seq.static == ("district_id", "frequency")
    with pytest.raises(InputError, match="--entity"):
        infer_sequence_schema(DATA / "pbcseq.csv", entity="nope", order="day")
    with pytest.raises(InputError, match="--static"):
        infer_sequence_schema(DATA / "pbcseq.csv", entity="id", order="day", static=("day",))
