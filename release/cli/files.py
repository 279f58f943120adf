"""Commands for data made outside synthgate: audit-file and export-train."""

from __future__ import annotations

from pathlib import Path

import click

from release.cli.common import emit, get_workspace, json_option, print_checks, progress, raise_if_failed
from release.file_audit import GeneratorSpec, audit_file, export_train


@click.command("audit-file")
@click.argument("source")
@click.argument("synthetic_file", type=click.Path(dir_okay=False))
@click.option("--generator-spec", "spec", default=None,
              help='What the outside party claims it ran, e.g. "name=vendor-gan,epsilon=1,delta=1e-9".')
@click.option("--split-of", "split_of", default=None,
              help="Use this run's train/holdout split (default: the source's external split).")
@click.option("--target", default=None, help="Column the utility audit predicts.")
@click.option("--profile", type=click.Choice(["fast", "thorough"]), default=None,
              help="Membership attacks' settings (default: the profile the policy requires).")
@click.option("--nodes", "nodes", default=None, type=click.Path(dir_okay=False),
              help="Graph sources (required there, refused otherwise): the synthetic graph's node table, CSV or "
                   "Parquet, with every node id (isolated ones included) and the node attributes.")
@json_option
@click.pass_context
def audit_file_cmd(ctx: click.Context, source: str, synthetic_file: str, spec: str | None, split_of: str | None,
                   target: str | None, profile: str | None, nodes: str | None, as_json: bool) -> None:
    """Audit synthetic data synthgate did not produce, against a registered source; exit 3 if the gate fails.

    Runs every audit that needs no retraining; nothing is charged and nothing can be released.

    For a graph source SYNTHETIC_FILE is the edge list (the schema's edge format, or a CSV/Parquet
    with the schema's source/target columns) and --nodes its node table; with a public node set its
    ids must be the public ones. The edge membership attack and fidelity run; the one-run audit and
    the privacy game need a generator to refit and are reported as not run.

    Example: synthgate audit-file adult vendor.csv --generator-spec "name=vendor,epsilon=1,delta=1e-9"

    Example (graph): synthgate audit-file email vendor-edges.csv --nodes vendor-nodes.csv
    """
    ws = get_workspace(ctx)
    outcome = audit_file(ws, source, Path(synthetic_file), spec=GeneratorSpec.parse(spec), split_of=split_of,
                         target=target, profile=profile, nodes=None if nodes is None else Path(nodes),
                         progress=lambda name: progress(f"audit: {name}"))
    data = {"audit_id": outcome.audit_id, "gate_passed": outcome.decision.passed,
            "dp_failure": bool(outcome.decision.dp_failures), "checks": outcome.decision.checks,
            "report": str(outcome.directory / "report.html"), "audit": str(outcome.directory / "audit.json")}

    def human() -> None:
        print_checks(outcome.decision.checks)
        click.echo(f"gate {'PASSED' if outcome.decision.passed else 'FAILED'}; report: {outcome.directory / 'report.html'}")

    emit(data, as_json, human)
    raise_if_failed(outcome.decision, f"file {Path(synthetic_file).name}")


@click.command("export-train")
@click.argument("source")
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False),
              help="CSV file for the training part of the source's external split (for graphs: the edge list).")
@click.option("--nodes-out", "nodes_out", default=None, type=click.Path(dir_okay=False),
              help="Graph sources (required there, refused otherwise): CSV file for the node table, every node id "
                   "(isolated ones included) and the node attributes.")
@json_option
@click.pass_context
def export_train_cmd(ctx: click.Context, source: str, out: str, nodes_out: str | None, as_json: bool) -> None:
    """Write the training part of the source's external split, for a party that synthesizes elsewhere.

    These are real records: hand them over only as your agreements allow. audit-file later holds the
    outside party's synthetic data against the holdout part, which never leaves the workspace.

    For a graph source the split holds out edges (one coin each): -o gets the training edges as a
    CSV edge list with the schema's source/target column names, --nodes-out the node table.

    Example: synthgate export-train adult -o adult-train.csv

    Example (graph): synthgate export-train email -o email-train-edges.csv --nodes-out email-nodes.csv
    """
    info = export_train(get_workspace(ctx), source, Path(out), None if nodes_out is None else Path(nodes_out))

    def human() -> None:
        if "nodes_path" in info:
            click.echo(f"wrote {info['edges']} training edges to {info['path']} and {info['nodes']} nodes to "
                       f"{info['nodes_path']}")
        else:
            click.echo(f"wrote {info['rows']} training rows to {info['path']}")

    emit(info, as_json, human)


COMMANDS = [audit_file_cmd, export_train_cmd]
