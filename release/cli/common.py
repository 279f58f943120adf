"""Options and output shared by every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Column, Table

from privacy.errors import GateError
from release.gate import GateDecision
from release.workspace import Workspace, default_workspace, open_workspace

F = TypeVar("F", bound=Callable[..., Any])

#: progress and human messages go to stderr so that --json output on stdout stays clean
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (keys in README.md).")(f)


def workspace_path(ctx: click.Context) -> Path:
    root = ctx.find_root().params.get("workspace")
    return Path(root) if root else default_workspace()


def get_workspace(ctx: click.Context) -> Workspace:
    return open_workspace(workspace_path(ctx))


def emit(data: dict[str, Any] | list[Any], as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human()


_bar: list[Any] = []  # the live progress bar (a rich Progress and its task id), while one runs


def _stop_bar() -> None:
    if _bar:
        bar, _task = _bar.pop()
        bar.stop()


def progress(message: str, fraction: float | None = None) -> None:
    """Progress to stderr: a live bar on a terminal for steps with a fraction (training epochs with
    loss and epsilon spent so far), plain lines otherwise (pipes, CI logs, ``NO_COLOR``)."""
    if fraction is not None and err_console.is_terminal and not err_console.is_dumb_terminal:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        if not _bar:
            bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                           console=err_console)
            bar.start()
            _bar.append((bar, bar.add_task(message, total=1.0)))
        bar, task = _bar[0]
        bar.update(task, completed=min(max(fraction, 0.0), 1.0), description=message)
        if fraction >= 1.0:
            _stop_bar()
        return
    _stop_bar()
    if fraction is None:
        err_console.print(f"[dim]·[/dim] {message}")
    else:
        err_console.print(f"[dim]·[/dim] {message} [dim]({100 * fraction:.0f}%)[/dim]")


def fail_line(message: str) -> None:
    _stop_bar()
    sys.stderr.write(f"synthgate: error: {message}\n")


def raise_if_failed(decision: GateDecision, what: str) -> None:
    """One line for a failed gate; a false DP claim is named as such, apart from threshold misses."""
    if decision.passed:
        return
    if decision.dp_failures:
        raise GateError(f"DP failure for {what}: the claimed epsilon is refuted by "
                        f"{', '.join(c['name'] for c in decision.dp_failures)}")
    failed = ", ".join(c["name"] for c in decision.failed) or "no checks"
    raise GateError(f"gate failed for {what}: {failed}")


def symbol(outcome: str) -> str:
    """A pass/fail symbol the output can carry (ASCII where the stream cannot encode it)."""
    from audits.report.summary import SYMBOLS

    fancy, plain = SYMBOLS[outcome]
    try:
        fancy.encode(out_console.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return plain
    return fancy


_STYLE = {"pass": "green", "fail": "red", "dp_failure": "bold red", "empty": "red", "info": "dim"}


def print_first_screen(info: dict[str, Any], rows: Any) -> None:
    """The report's first screen in the terminal: decision, guarantee, budget, approvals, then every
    gate check with its meaning. Outcomes are words and symbols; colour only repeats them, so the
    screen reads the same under ``NO_COLOR``, in a pipe or a log."""
    from rich.markup import escape
    from rich.panel import Panel

    d = info["decision"]
    status = d["status"]
    word = {"pass": "PASS", "fail": "FAIL", "dp_failure": "FAIL (DP FAILURE)", "empty": "FAIL"}[status]
    sym = symbol("dp_failure" if status == "dp_failure" else "pass" if status == "pass" else "fail")
    style = _STYLE[status]
    lines = [f"[{style}]{sym} {word}[/{style}]  [bold]{escape(d['headline'])}[/bold]", escape(d["reason"]), "",
             f"[bold]Guarantee:[/bold] {escape(d['guarantee'])}"]
    if d.get("budget"):
        lines.append(f"[bold]Budget:[/bold] {escape(d['budget'])}")
    lines.append(f"[bold]{escape(d['approvals'].split(':', 1)[0])}:[/bold]{escape(d['approvals'].split(':', 1)[1])}")
    title = (f"run {info['run_id']} · source {escape(str(info['source']))} · {escape(str(info['generator']))} · "
             f"policy {escape(str(info['policy']))} · {info['state']}")
    # wrapped inside the panel (the console's soft wrap would crop the panel's lines instead)
    out_console.print(Panel("\n".join(lines), title=title, title_align="left", border_style=style), soft_wrap=False)
    t = Table(Column("check", no_wrap=True), "value", "95% interval", Column("threshold", no_wrap=True),
              Column("result", no_wrap=True), "meaning", title="Gate checks", title_justify="left")
    for r in rows:
        outcome = r.outcome
        flags = "".join(f"\n[yellow]flag:[/yellow] {escape(f)}" for f in r.flags)
        t.add_row(escape(r.name), r.value, r.interval, f"{r.threshold} ({r.gated_on.split(' ')[0]})",
                  f"[{_STYLE[outcome]}]{symbol(outcome)} {r.word}[/{_STYLE[outcome]}]", escape(r.meaning) + flags)
    out_console.print(t, soft_wrap=False)


def print_checks(checks: list[dict[str, Any]]) -> None:
    t = Table("check", "value", "gated on", "threshold", "result", "flags")
    for c in checks:
        v = c.get("gated_value")
        fail = "[red]DP FAILURE[/red]" if c.get("kind") == "dp_claim" else "[red]FAIL[/red]"
        t.add_row(str(c["name"]), "n/a" if v is None else f"{v:.4g}", str(c.get("gated_on", "value")),
                  f"{'<=' if c.get('goal') == 'minimize' else '>='} {c.get('threshold'):.4g}",
                  "[green]pass[/green]" if c["passed"] else fail, "; ".join(map(str, c.get("flags") or [])))
    out_console.print(t)


def print_attacks(rows: list[dict[str, Any]]) -> None:
    """The membership attacks' figures, reported ones included (``release.runs.attack_figures``)."""
    # figure names stay whole so that they can be searched for in a narrow terminal or a log
    t = Table("attack", Column("figure", no_wrap=True), "value", "95% interval", "role", "notes")
    for r in rows:
        v, iv = r.get("value"), r.get("interval")
        t.add_row(str(r["audit"]), str(r["name"]), "" if v is None else f"{v:.4g}",
                  "" if not iv else f"[{iv[0]:.4g}, {iv[1]:.4g}]",
                  "DP claim" if r.get("kind") == "dp_claim" else str(r.get("role")),
                  "; ".join([*(r.get("flags") or []), *([r["method"]] if r.get("method") else [])]))
    out_console.print(t)
