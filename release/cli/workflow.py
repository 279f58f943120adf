"""Commands of the data path: init, schema infer, register, budget, synthesize, audit, review."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Column, Table

from privacy.errors import InputError
from privacy.generators.registry import DEEP_GENERATORS
from privacy.graphs import GraphReport
from privacy.schema import Schema
from privacy.sequences import SequenceReport
from release.atomic import write_atomic
from release.cli.common import (
    emit,
    err_console,
    get_workspace,
    json_option,
    out_console,
    print_attacks,
    print_checks,
    print_first_screen,
    progress,
    raise_if_failed,
    workspace_path,
)
from release.cli.trust import passphrase_option
from release.runs import audit, list_runs, review
from release.sources import budget_report, check_target_name, register
from release.synthesize import SynthesisRequest, recommended_generator, synthesize
from release.workspace import init_workspace


def _default_requester() -> str:
    try:
        return os.environ.get("SYNTHGATE_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@click.command("init")
@click.option("--policy", default="default", show_default=True, help="Bundled policy name or a policy file.")
@click.option("--database", default=None, metavar="URL",
              help="Keep the ledger, runs and event log in PostgreSQL (postgresql://USER@HOST[:PORT]/DATABASE, "
                   "an empty database, no password in the URL) instead of WORKSPACE/synthgate.db.")
@click.option("--database-password-env", "password_env", default=None, metavar="NAME",
              help="Read the PostgreSQL password from this environment variable at every command "
                   "(default: libpq's PGPASSWORD or ~/.pgpass).")
@click.option("--admin", default=None, metavar="NAME",
              help="Register NAME as the workspace's first admin (with --admin-key), who grants every other role.")
@click.option("--admin-key", "admin_key", default=None, type=click.Path(dir_okay=False),
              help="The first admin's private key (synthgate keys new NAME); the grant is self-signed.")
@passphrase_option
@json_option
@click.pass_context
def init_cmd(ctx: click.Context, policy: str, database: str | None, password_env: str | None,
             admin: str | None, admin_key: str | None, as_json: bool) -> None:
    """Create a workspace: database, release signing key, runs folder.

    Example: synthgate --workspace ws init --policy health

    A team: synthgate --workspace ws init --database postgresql://synthgate@db.example.org/synthgate

    With its first admin: synthgate --workspace ws init --admin root --admin-key keys/root.key
    """
    from release.members import bootstrap_admin, load_admin

    if (admin is None) != (admin_key is None):
        raise InputError("--admin and --admin-key go together")
    # the admin's key (and its passphrase) before anything is written
    signer = load_admin(admin, Path(admin_key)) if admin is not None and admin_key is not None else None
    ws = init_workspace(workspace_path(ctx), policy, database=database, password_env=password_env)
    data = {"workspace": str(ws.root), "policy": ws.policy().name, "release_public_key": str(ws.release_pub_path),
            "database": ws.database.describe(), "admin": None}
    if signer is not None:
        data["admin"] = bootstrap_admin(ws, signer)["name"]
    emit(data, as_json, lambda: click.echo(
        f"workspace created at {ws.root} (policy {data['policy']}, database {data['database']}); "
        f"release key: {ws.release_pub_path}" + (f"; first admin: {admin}" if admin else
                                                 "; no admin yet (synthgate member bootstrap NAME --key FILE)")))


@click.group("schema")
def schema_group() -> None:
    """Public schemas."""


@schema_group.command("infer")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the draft.")
@click.option("--kind", type=click.Choice(["tabular", "sequential", "graph"]), default="tabular", show_default=True,
              help="Data kind: one row per record, a long table of events per entity, or an edge list.")
@click.option("--entity", default=None, help="Sequences: the entity key column.")
@click.option("--order", "order_col", default=None, help="Sequences: the order column (integer steps or dates).")
@click.option("--static", "static_cols", multiple=True,
              help="Sequences: a per-entity column repeated on every event row (repeat the option).")
@click.option("--statics", "statics_path", default=None, type=click.Path(dir_okay=False),
              help="Sequences: a static table joined on the entity key (instead of --static).")
@click.option("--nodes", "nodes_path", default=None, type=click.Path(dir_okay=False),
              help="Graphs: a node table (id column first, then node attributes).")
@click.option("--directed", is_flag=True, help="Graphs: the edges are directed.")
@json_option
def schema_infer_cmd(data: str, output: str, kind: str, entity: str | None, order_col: str | None,
                     static_cols: tuple[str, ...], statics_path: str | None, nodes_path: str | None,
                     directed: bool, as_json: bool) -> None:
    """Draft a schema from a CSV/Parquet file (READS THE SENSITIVE DATA: review before use).

    Example: synthgate schema infer patients.csv -o schema.yaml

    Sequences: synthgate schema infer visits.csv --kind sequential --entity id --order day --static sex -o schema.yaml

    Graphs: synthgate schema infer edges.txt --kind graph [--nodes nodes.csv] [--directed] -o schema.yaml
    """
    from privacy.infer import (
        DRAFT_WARNING,
        GRAPH_DRAFT_WARNING,
        SEQUENCE_DRAFT_WARNING,
        draft_yaml,
        infer_graph_schema,
        infer_schema,
        infer_sequence_schema,
    )

    if kind != "graph" and (nodes_path or directed):
        raise InputError("--nodes and --directed need --kind graph")
    if kind == "graph":
        if entity or order_col or static_cols or statics_path:
            raise InputError("--entity, --order, --static and --statics need --kind sequential")
        schema = infer_graph_schema(Path(data), directed=directed, nodes_path=nodes_path, name=Path(data).stem)
        warning = GRAPH_DRAFT_WARNING
    elif kind == "sequential":
        if not entity or not order_col:
            raise InputError("--kind sequential needs --entity and --order")
        if static_cols and statics_path:
            raise InputError("give the static columns either with --static or as a --statics table, not both")
        schema = infer_sequence_schema(Path(data), entity=entity, order=order_col, static=static_cols,
                                       name=Path(data).stem, statics_path=statics_path)
        warning = SEQUENCE_DRAFT_WARNING
    else:
        if entity or order_col or static_cols or statics_path:
            raise InputError("--entity, --order, --static and --statics need --kind sequential")
        schema = infer_schema(Path(data), name=Path(data).stem)
        warning = DRAFT_WARNING
    write_atomic(Path(output), draft_yaml(schema).encode())
    err_console.print(f"[bold red]{warning}[/bold red]")
    out: dict[str, Any] = {"schema": output, "kind": kind, "columns": len(schema.columns), "drafted_from_data": True}
    note = ""
    if schema.is_sequential:
        out["max_events"] = schema.seq.max_events
        note = f"; drafted event cap max_events = {schema.seq.max_events}, review it"
    if schema.is_graph:
        out.update(max_degree=schema.gspec.max_degree, node_count=schema.gspec.node_count, nodes=schema.gspec.nodes)
        note = (f"; drafted node set {schema.gspec.nodes}"
                + (f" ({schema.gspec.node_count} nodes)" if schema.gspec.node_count else "")
                + f" and degree cap max_degree = {schema.gspec.max_degree}, review them")
    emit(out, as_json, lambda: click.echo(
        f"draft schema written to {output} ({len(schema.columns)} {'node attribute ' if schema.is_graph else ''}"
        f"columns{note})"))


@click.command("register")
@click.argument("source")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--schema", "schema_path", required=True, type=click.Path(dir_okay=False), help="Public schema (YAML/JSON).")
@click.option("--accept-drafted-schema", is_flag=True, help="Accept a schema drafted from the data (leaks its domain).")
@click.option("--statics", "statics_path", default=None, type=click.Path(dir_okay=False),
              help="Sequences: a static table joined on the entity key (else statics repeat on the event rows).")
@click.option("--nodes", "nodes_path", default=None, type=click.Path(dir_okay=False),
              help="Graphs: a node table (the node key column and the node attributes).")
@click.option("--kind", type=click.Choice(["tabular", "sequential", "graph"]), default=None,
              help="Expected data kind; the schema's 'kind' decides, this only checks it.")
@json_option
@click.pass_context
def register_cmd(ctx: click.Context, source: str, data: str, schema_path: str, accept_drafted_schema: bool,
                 statics_path: str | None, nodes_path: str | None, kind: str | None, as_json: bool) -> None:
    """Validate DATA against the schema, fingerprint it, open SOURCE's budget account.

    Example: synthgate register adult adult.csv --schema adult.yaml

    Sequences: synthgate register bank transactions.csv --statics accounts.csv --schema bank.yaml

    Graphs: synthgate register contacts edges.txt [--nodes nodes.csv] --schema contacts.yaml
    """
    ws = get_workspace(ctx)
    reg = register(ws, source, Path(data), Path(schema_path), accept_drafted=accept_drafted_schema,
                   statics=None if statics_path is None else Path(statics_path), kind=kind,
                   nodes=None if nodes_path is None else Path(nodes_path))
    out: dict[str, Any] = {
        "source": reg.source, "kind": reg.kind, "version": reg.version, "fingerprint": reg.fingerprint,
        "new_account": reg.new_account, "clipped": reg.report.clipped, "mapped_to_other": reg.report.mapped_to_other,
    }
    if isinstance(reg.report, SequenceReport):
        out["sequences"] = reg.report.to_dict()
    if isinstance(reg.report, GraphReport):
        out["graph"] = reg.report.to_dict()

    def human() -> None:
        click.echo(f"registered {source} version {reg.version} (sha256 {reg.fingerprint[:16]}...)"
                   + ("; new budget account" if reg.new_account else "; shares the existing account"))
        if isinstance(reg.report, GraphReport):
            g = reg.report
            unit = Schema.load(Path(schema_path)).gspec.privacy_unit()
            click.echo(f"{g.nodes} nodes, {g.edges} edges (unit of privacy: {unit})")
            if g.self_loops_dropped:
                err_console.print(f"note: {g.self_loops_dropped} self-loops dropped (schema: self_loops: drop)")
            if g.duplicates_merged:
                err_console.print(f"note: {g.duplicates_merged} repeated edges merged (schema: duplicates: merge)")
        if isinstance(reg.report, SequenceReport):
            r = reg.report
            click.echo(f"{r.entities} entities, {r.events} events (unit of privacy: one entity with all its events)")
            if r.truncated_events:
                err_console.print(f"warning: {r.truncated_entities} entities have more than max_events events; "
                                  f"{r.truncated_events} events will be dropped by the truncation rule")
            if r.events_outside_order:
                err_console.print(f"warning: {r.events_outside_order} events fall outside the schema's order bounds "
                                  f"and are dropped ({r.entities_dropped} entities left with none)")
            if r.gaps_outside:
                err_console.print(f"warning: {r.gaps_outside} gaps between events are outside the schema's gap "
                                  "bounds; generators clip them")
            if r.entities_without_events:
                err_console.print(f"note: {r.entities_without_events} entities of the static table have no events "
                                  "and are not part of the source")
        for col, n in reg.report.clipped.items():
            err_console.print(f"warning: column {col!r}: {n} values outside the schema's bounds will be clipped")
        for col, n in reg.report.mapped_to_other.items():
            err_console.print(f"warning: column {col!r}: {n} values outside the schema's categories will be mapped to 'other'")

    emit(out, as_json, human)


@click.command("budget")
@click.argument("source", required=False)
@json_option
@click.pass_context
def budget_cmd(ctx: click.Context, source: str | None, as_json: bool) -> None:
    """Spent and remaining epsilon/delta, with every charge.

    Example: synthgate budget adult --json
    """
    rows = budget_report(get_workspace(ctx), source)

    def human() -> None:
        for r in rows:
            click.echo(f"{r['source']} (policy {r['policy']}): spent eps {r['spent_epsilon']:g} / {r['total_epsilon']:g}, "
                       f"delta {r['spent_delta']:g} / {r['total_delta']:g}; remaining eps {r['remaining_epsilon']:g}")
            t = Table("run", "epsilon", "delta", "mechanism", "at")
            charges: list[dict[str, Any]] = r["charges"]  # type: ignore[assignment]
            for c in charges:
                t.add_row(str(c["run_id"]), f"{c['epsilon']:g}", f"{c['delta']:g}", str(c["mechanism"]), str(c["at"]))
            out_console.print(t)

    emit(rows[0] if source else rows, as_json, human)


@click.command("synthesize")
@click.argument("source")
@click.option("--generator", required=True,
              help="DP generator. Tables: mst or aim (marginals), dpctgan, dpdiffusion or patectgan (deep). Sequences: "
                   "dpmarkov (noisy Markov counts) or dpar (autoregressive, DP-SGD). Or 'recommended' (the policy's "
                   "choice for the data's shape).")
@click.option("--epsilon", type=float, required=True, help="Epsilon to spend (charged before the data is read).")
@click.option("--delta", type=float, default=None, help="Delta (default: the policy's per-release cap).")
@click.option("--rows", type=int, default=None,
              help="Rows to sample, entities for sequences (default: the model's DP estimate of the train size).")
@click.option("--seed", type=int, default=None, help="Seed of sampling only (never of the split or the DP noise).")
@click.option("--requester", default=None, help="Who asks for this release (default: $SYNTHGATE_USER or the login name).")
@click.option("--requester-key", "requester_key", default=None, type=click.Path(dir_okay=False),
              help="The requester's private key, when the requester role was granted with a public key.")
@click.option("--target", default=None, help="Column the utility audit predicts (default: the policy's or schema's).")
@click.option("--max-rounds", type=int, default=None, help="AIM: stop after this many rounds, spending the rest in the last.")
@click.option("--time-limit", type=float, default=None,
              help="AIM: seconds after which the next round spends the rest. Deep generators: train only the steps "
                   "that fit in this many seconds (timed before training on schema-random rows; the noise is "
                   "calibrated for them, so the budget is spent in full).")
@click.option("--epochs", type=int, default=None, help="Deep generators: passes over the data (in expectation).")
@click.option("--batch-size", type=int, default=None, help="Deep generators: expected batch size of DP-SGD.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Deep generators: where to train (auto: a CUDA GPU when torch sees one, else the CPU).")
@click.option("--markov-order", type=int, default=None,
              help="dpmarkov: 1 (next state from the current one) or 2 (from the last two).")
@json_option
@click.pass_context
def synthesize_cmd(ctx: click.Context, source: str, generator: str, epsilon: float, delta: float | None,
                   rows: int | None, seed: int | None, requester: str | None, requester_key: str | None, target: str | None,
                   max_rounds: int | None, time_limit: float | None, epochs: int | None, batch_size: int | None,
                   device: str | None, markov_order: int | None, as_json: bool) -> None:
    """Charge the budget, fit a DP generator on the training split, sample synthetic rows.

    Example: synthgate synthesize adult --generator mst --epsilon 1

    Sequences: synthgate synthesize bank --generator dpmarkov --epsilon 1 --rows 500   (500 entities)
    """
    check_target_name(target, "--target")
    recommended = generator == "recommended"
    if recommended:
        generator = recommended_generator(get_workspace(ctx), source)
    options: dict[str, object] = {}
    deep = {"epochs": epochs, "batch_size": batch_size, "device": device}
    if generator == "aim":
        if max_rounds is not None:
            options["max_rounds"] = max_rounds
        if time_limit is not None:
            options["time_limit_s"] = time_limit
    elif max_rounds is not None:
        raise InputError("--max-rounds applies to the aim generator only")
    if markov_order is not None:
        if generator != "dpmarkov":
            raise InputError("--markov-order applies to the dpmarkov generator only")
        options["order"] = markov_order
    if generator in DEEP_GENERATORS:
        options.update({k: v for k, v in deep.items() if v is not None})
        if time_limit is not None:
            options["time_limit_s"] = time_limit
    else:
        given = [f"--{k.replace('_', '-')}" for k, v in deep.items() if v is not None]
        if given:
            raise InputError(f"{', '.join(given)} apply to the deep generators only ({', '.join(DEEP_GENERATORS)}); "
                             f"the generator is {generator}")
        if time_limit is not None and generator != "aim":
            raise InputError("--time-limit applies to aim and the deep generators only")
    if recommended:
        progress(f"the policy recommends {generator!r} for this data's shape", None)
    req = SynthesisRequest(source=source, generator=generator, epsilon=epsilon, delta=delta, rows=rows, seed=seed,
                           requester=requester or _default_requester(), target=target, options=options)
    key = None
    if requester_key is not None:
        from release.keys import load_private_key

        key = load_private_key(Path(requester_key))
    run_id = synthesize(get_workspace(ctx), req, progress=progress, requester_key=key)
    emit({"run_id": run_id, "source": source, "generator": generator, "epsilon": epsilon}, as_json,
         lambda: click.echo(run_id))


@click.command("audit")
@click.argument("run_id")
@click.option("--target", default=None, help="Column the utility audit predicts.")
@click.option("--profile", type=click.Choice(["fast", "thorough"]), default=None,
              help="Membership attacks' settings (default: the profile the policy requires).")
@json_option
@click.pass_context
def audit_cmd(ctx: click.Context, run_id: str, target: str | None, profile: str | None, as_json: bool) -> None:
    """Attack and measure a run; write audit.json and report.html; exit 3 if the gate fails.

    Example: synthgate audit run-0123456789ab --profile thorough
    """
    check_target_name(target, "--target")
    ws = get_workspace(ctx)
    outcome = audit(ws, run_id, target=target, profile=profile, progress=lambda name: progress(f"audit: {name}"))
    d = ws.run_dir(run_id)
    data = {"run_id": run_id, "gate_passed": outcome.decision.passed, "checks": outcome.decision.checks,
            "report": str(d / "report.html"), "steward_report": str(d / "report-steward.html"),
            "audit": str(d / "audit.json")}

    def human() -> None:
        print_checks(outcome.decision.checks)
        click.echo(f"gate {'PASSED' if outcome.decision.passed else 'FAILED'}; report: {d / 'report.html'}; "
                   f"steward's copy (real distributions, do not release): {d / 'report-steward.html'}")

    emit(data, as_json, human)
    raise_if_failed(outcome.decision, f"run {run_id}")


@click.command("review")
@click.argument("run_id")
@json_option
@click.pass_context
def review_cmd(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run, its spend, every gate check and the decisions so far.

    Example: synthgate review run-0123456789ab
    """
    info = review(get_workspace(ctx), run_id)

    def human() -> None:
        sp = info["spend"]
        if info["decision"] is not None:
            from audits.report.summary import check_row

            print_first_screen(info, [check_row(c) for c in info["gate_checks"]])
        click.echo(f"run {info['run_id']} of {info['source']}: {info['state']}; generator {info['generator']}; "
                   f"epsilon {sp['epsilon']:g}, delta {sp['delta']:g}; requested by {info['requester']}; "
                   f"policy {info['policy']}")
        if info["error"]:
            click.echo(f"error: {info['error']}")
        if info["gate_checks"] and info["decision"] is None:
            print_checks(info["gate_checks"])
        if info["attacks"]:
            print_attacks(info["attacks"])
        click.echo(f"approvals: {sum(a['decision'] == 'approve' for a in info['approvals'])} of "
                   f"{info['approvals_required']} required")
        for a in info["approvals"]:
            withdrawn = " (withdrawn: the steward's key was revoked)" if a.get("withdrawn") else ""
            click.echo(f"  {a['steward']}: {a['decision']}{withdrawn} {a['comment']}")

    emit(info, as_json, human)


@click.command("report")
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf", "json"]), default="html", show_default=True,
              help="html: the report page; pdf: the same page printed by a headless Chromium; json: audit.json, "
                   "validated against its schema.")
@click.option("--view", type=click.Choice(["release", "steward"]), default="release", show_default=True,
              help="release: the page as the bundle carries it (no histograms of real records); steward: the "
                   "steward's copy with the real distributions (never to be released).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write here instead of standard output (required for pdf).")
@json_option
@click.pass_context
def report_cmd(ctx: click.Context, run_id: str, fmt: str, view: str, output: str | None, as_json: bool) -> None:
    """Redraw a run's (or a file audit's) report with today's budget, state and approvals.

    The report.html bound into the run's statement (and the bundle) stays as the audit drew it.

    Example: synthgate report run-0123456789ab --format pdf -o report.pdf
    """
    from release.report import render_report

    ws = get_workspace(ctx)
    if fmt == "pdf" and output is None:
        raise InputError("--format pdf needs -o FILE")
    if output is not None:
        target = Path(output).resolve()
        if target.is_relative_to(ws.root.resolve()):
            # the bound report.html, audit.json and the ledger live there: a redrawn copy must not replace them
            raise InputError(f"{output}: inside the workspace; write the report elsewhere")
        if target.exists() and not target.is_file():
            raise InputError(f"{output}: not a regular file")
    data = render_report(ws, run_id, fmt=fmt, view=view)  # type: ignore[arg-type]
    if output is None:
        if as_json and fmt != "json":
            raise InputError("--json without -o: the report itself goes to standard output")
        click.echo(data.decode(), nl=False)
        return
    write_atomic(Path(output), data)
    info = {"run_id": run_id, "format": fmt, "view": view, "path": str(Path(output)), "bytes": len(data)}
    emit(info, as_json, lambda: click.echo(f"{fmt} report of {run_id} ({view} view) written to {output}"))


RUN_STATES = ("created", "synthesized", "auditing", "gate_failed", "awaiting_approval", "approved", "released",
              "rejected", "failed")


#: the most characters of a run's error the table shows (``synthgate runs``; --json has it whole)
ERROR_WIDTH = 80


def short_error(error: str | None, width: int = ERROR_WIDTH) -> str:
    """A run's error on one line of at most ``width`` characters ("" for none), cut with "..."."""
    if not error:
        return ""
    line = " ".join(part.strip() for part in error.splitlines() if part.strip())
    return line if len(line) <= width else line[:max(width - 3, 0)].rstrip() + "..."


def _runs_table(rows: list[dict[str, Any]], error_width: int | None = None) -> Table:
    """The runs as a table; with ``error_width``, each run's error on one line of at most that width."""
    # the run id is what a steward copies into the next command: never wrapped
    columns: list[Column | str] = [Column("run", no_wrap=True), "state", "source", "kind", "generator", "epsilon",
                                   "decision", "approvals", "created"]
    if error_width:
        columns.append(Column("error", no_wrap=True, overflow="ellipsis", max_width=error_width))
    table = Table(*columns)
    for r in rows:
        decision = {"passed": "PASS", "failed": "FAIL", None: "-"}[r["decision"]]
        cells = [r["run_id"], r["state"], escape(r["source"]), r["kind"], r["generator"], f"{r['epsilon']:g}",
                 decision, str(r["approvals"]), (r["created_at"] or "")[:19]]
        if error_width:
            cells.append(escape(short_error(r["error"], error_width)))
        table.add_row(*cells)
    return table


@click.command("runs")
@click.option("--source", default=None, help="Only the runs of this source.")
@click.option("--state", type=click.Choice(RUN_STATES), default=None, help="Only the runs in this state.")
@json_option
@click.pass_context
def runs_cmd(ctx: click.Context, source: str | None, state: str | None, as_json: bool) -> None:
    """List runs, newest first: state, source, kind, generator, epsilon, gate decision, approvals.

    Example: synthgate runs --source adult
    """
    rows = list_runs(get_workspace(ctx), source=source, state=state)

    def human() -> None:
        if not rows:
            click.echo("no runs")
            return
        table = _runs_table(rows)
        failed = [r for r in rows if r["error"]]
        if not failed:
            out_console.print(table)
            return
        # why a run failed (or its last audit did not finish), on one line, in the room the other
        # columns leave (a column squeezed below that would crush them); --json has it whole
        room = min(ERROR_WIDTH, out_console.width - out_console.measure(table).maximum - 3)
        if room >= 24:
            out_console.print(_runs_table(rows, room))
            return
        out_console.print(table)
        for r in failed:
            click.echo(f"{r['run_id']}: {short_error(r['error'], max(out_console.width - len(r['run_id']) - 2, 24))}")

    emit(rows, as_json, human)


COMMANDS = [init_cmd, schema_group, register_cmd, budget_cmd, synthesize_cmd, audit_cmd, review_cmd, report_cmd,
            runs_cmd]
