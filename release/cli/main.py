"""Entry point: the command group and the one place where errors become one line and an exit code.

Exit codes: 0 ok, 2 bad input or usage, 3 gate failed or release refused, 4 budget refused,
5 integrity failure, 1 only for a bug. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from privacy.errors import SynthgateError
from release.cli.common import fail_line


class SynthgateGroup(click.Group):
    """A group whose ``main`` turns every error into one stderr line and a distinct exit code."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(args) if args is not None else sys.argv[1:]
        debug = "--debug" in argv
        try:
            super().main(args=argv, prog_name=prog_name or "synthgate", complete_var=complete_var,
                         standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            fail_line("aborted")
            sys.exit(1)
        except click.ClickException as exc:
            fail_line(one_line(exc.format_message()))
            sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code or 2)
        except SynthgateError as exc:
            if debug:
                raise
            fail_line(one_line(str(exc)))
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            fail_line("interrupted")
            sys.exit(130)
        except OSError as exc:
            # the file system refused a path the user gave (a name too long, a file where a folder
            # was expected, no permission, a full disk): bad input or environment, not a bug
            if debug:
                raise
            what = exc.strerror or type(exc).__name__
            fail_line(one_line(f"{what}: {exc.filename}" if exc.filename is not None else what))
            sys.exit(2)
        except Exception as exc:  # a bug: one line, exit 1, traceback only with --debug
            if debug:
                raise
            fail_line(one_line(f"internal error ({type(exc).__name__}: {exc}); rerun with --debug for the traceback"))
            sys.exit(1)
        sys.exit(0)


def one_line(message: str) -> str:
    """The message on one line: every line break Python knows (\\r, \\u2028, ...) becomes a space."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip()) or "error"


@click.group(cls=SynthgateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--workspace", type=click.Path(file_okay=False), default=None,
              help="Workspace folder (default: $SYNTHGATE_WORKSPACE, else ./synthgate-workspace).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="synthgate")
def cli(workspace: str | None, debug: bool) -> None:
    """synthgate: differentially private synthetic data, audited, gated, approved, signed.

    The path: init -> register -> synthesize -> audit -> review -> approve -> release -> verify.
    """


def _register_commands() -> None:
    from release.cli import demo, files, trust, workflow

    for mod in (workflow, files, trust, demo):
        for cmd in mod.COMMANDS:
            cli.add_command(cmd)


_register_commands()


def main() -> None:
    cli.main()
