"""One entry point for reading a registered source of any kind: a table, sequences or a graph.

The workflow (``release``) reads sensitive data only through here, after the charge: the bytes
are fingerprinted as they are parsed and refused if they changed since registration, conformed to
the public schema, and split into training and holdout parts by the source's secret seed (rows for
tables, whole entities for sequences, edges for graphs, nodes for graphs with ``unit: node``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privacy.errors import InputError, IntegrityError
from privacy.graphs import load_graph_verified, parse_synthetic_graph, split_edges, split_nodes
from privacy.schema import Schema
from privacy.sequences import combined_fingerprint, load_sequences_verified, parse_synthetic, split_entities
from privacy.split import train_holdout
from privacy.table import fingerprint, load_verified, parse_table


@dataclass(frozen=True)
class SourceFiles:
    """The files of one registered version: the data (events for sequences, edges for graphs) and an
    optional second file (the static table of sequences, the node table of graphs)."""

    path: str
    fingerprint: str
    statics_path: str | None = None
    statics_fingerprint: str | None = None

    @property
    def combined_fingerprint(self) -> str:
        """One SHA-256 for the version: the data file's, or both files' combined."""
        return combined_fingerprint(self.fingerprint, self.statics_fingerprint)

    def precheck(self) -> None:
        """Refuse, before anything is charged, files that are gone or changed since registration.

        Only a yes/no about the files' bytes leaves this function; the charged read re-checks the
        fingerprints on the bytes it parses.
        """
        for path, expected in ((self.path, self.fingerprint), (self.statics_path, self.statics_fingerprint)):
            if path is None:
                continue
            p = Path(path)
            if not p.is_file():
                raise InputError(f"the registered data file {p} is missing")
            if fingerprint(p) != expected:
                raise IntegrityError(f"{p} changed since it was registered (SHA-256 differs); register the new version")


def load_source(files: SourceFiles, schema: Schema) -> Any:
    """The conformed data of a registered version: a polars DataFrame, ``SequenceData`` or ``GraphData``."""
    if schema.is_graph:
        return load_graph_verified(files.path, schema, files.fingerprint, files.statics_path,
                                   files.statics_fingerprint)
    if schema.is_sequential:
        return load_sequences_verified(files.path, schema, files.fingerprint, files.statics_path,
                                       files.statics_fingerprint)
    if files.statics_path is not None:
        raise InputError("a tabular source has no static table")
    return load_verified(files.path, schema, files.fingerprint)


def split_source(data: Any, schema: Schema, holdout_fraction: float, seed: int) -> tuple[Any, Any]:
    """Train/holdout split by independent coins: per row for tables, per entity for sequences, per
    edge for graphs, per node for graphs with ``unit: node`` (pass ``policy.holdout_for(schema.kind)``)."""
    if schema.is_graph:
        if schema.gspec.node_unit:
            return split_nodes(data, holdout_fraction, seed)
        return split_edges(data, holdout_fraction, seed)
    if schema.is_sequential:
        return split_entities(data, holdout_fraction, seed)
    return train_holdout(data, holdout_fraction, seed)


def parse_output(data: bytes, schema: Schema, hint: str = "synthetic", nodes: bytes | None = None) -> Any:
    """A stored synthetic output (Parquet or CSV bytes) as the kind's data structure.

    A graph is two files: the edge list (``data``) and the node table (``nodes``).
    """
    if schema.is_graph:
        return parse_synthetic_graph(data, nodes, schema, hint)
    if schema.is_sequential:
        return parse_synthetic(data, schema, hint)
    return parse_table(data, hint)
