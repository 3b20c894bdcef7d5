"""The ``radadapt`` command line: assembles the Typer app and maps expected errors to one line.

Commands live in ``radadapt/commands/`` (one module per command or group). Expected failures raise
``RadadaptError`` and print ``error[code]: message`` plus a hint, with a non-zero exit code; anything else is an
internal error, reported by exception type only (messages from DICOM readers can contain source paths) unless
``--debug`` (anywhere on the line) or ``RADADAPT_DEBUG=1`` asks for the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from importlib import import_module
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from radadapt import __version__
from radadapt.errors import RadadaptError

COMMAND_MODULES = ("init", "demo", "ingest", "labels", "models", "train", "bench", "export", "report")
INTERNAL_ERROR_EXIT = 70
INTERRUPTED_EXIT = 130

_debug = {"on": False}

# Control flow that click/typer handle themselves (help, --version, usage errors). typer >= 0.2x vendors its own
# click (typer._click) with its own exception classes, so both families are listed.
_CLICK_FLOW: tuple[type[BaseException], ...] = (
    click.exceptions.Exit, click.exceptions.Abort, click.ClickException, typer.Exit, typer.Abort,
)
try:
    from typer._click.exceptions import ClickException as _VendoredClickException

    _CLICK_FLOW += (_VendoredClickException,)
except ImportError:  # typer that uses the installed click
    pass


def _debug_from_env() -> bool:
    return os.environ.get("RADADAPT_DEBUG", "") not in ("", "0")


class RootGroup(TyperGroup):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        _debug["on"] = _debug_from_env()  # per invocation: tests run many in one process
        if "--debug" in args:  # accepted anywhere on the line, not only before the command
            _debug["on"] = True
            args = [a for a in args if a != "--debug"]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):  # noqa: ANN201 - click's signature
        try:
            return super().invoke(ctx)
        except _CLICK_FLOW:
            raise
        except RadadaptError as exc:
            if _debug["on"]:
                traceback.print_exc()
            _print_error(exc)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            # Stages catch errors on archive files themselves (those paths can be PHI); what reaches here is about a
            # path the user named (store, output, config), so naming it helps and reveals nothing new.
            if _debug["on"]:
                traceback.print_exc()
            _print_error(_os_error(exc))
            ctx.exit(3)
        except KeyboardInterrupt:
            sys.stderr.write("interrupted: completed work is kept; rerun the same command to resume\n")
            ctx.exit(INTERRUPTED_EXIT)
        except Exception as exc:  # noqa: BLE001 - last line of defence, see module docstring
            if _debug["on"]:
                traceback.print_exc()
            where = _origin(exc)
            sys.stderr.write(
                f"internal error: {type(exc).__name__} in {where} (run again with --debug for the traceback; "
                "please report it, see SECURITY.md before sharing any output)\n"
            )
            ctx.exit(INTERNAL_ERROR_EXIT)


def _os_error(exc: OSError) -> RadadaptError:
    import errno

    kinds = {
        errno.ENOENT: ("io.not_found", "no such file or directory"),
        errno.EACCES: ("io.permission_denied", "permission denied"),
        errno.EPERM: ("io.permission_denied", "operation not permitted"),
        errno.EROFS: ("io.read_only", "read-only filesystem"),
        errno.ENOSPC: ("io.disk_full", "no space left on device"),
        errno.ENOTDIR: ("io.not_a_directory", "not a directory"),
        errno.EISDIR: ("io.is_a_directory", "is a directory"),
    }
    code, text = kinds.get(exc.errno, ("io.error", exc.strerror or type(exc).__name__))
    where = f": {exc.filename}" if exc.filename else ""
    return RadadaptError(code, f"{text}{where}")


def _print_error(exc: RadadaptError) -> None:
    sys.stderr.write(f"error[{exc.code}]: {exc}\n")
    if exc.hint:
        sys.stderr.write(f"  hint: {exc.hint}\n")


def _origin(exc: BaseException) -> str:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return "unknown location"
    code = last.tb_frame.f_code
    module = last.tb_frame.f_globals.get("__name__", "?")
    return f"{module}.{code.co_name}:{last.tb_lineno}"


app = typer.Typer(
    name="radadapt",
    cls=RootGroup,
    help=(
        "Adapt an open chest X-ray foundation encoder (RAD-DINO or MedImageInsight) to your hospital's own "
        "archive, offline. Pipeline: ingest -> labels -> train -> benchmark -> export / report. "
        "Try `radadapt demo` first: it runs the whole pipeline on a built-in synthetic hospital."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"radadapt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors (also RADADAPT_DEBUG=1).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    if debug:
        _debug["on"] = True


for _name in COMMAND_MODULES:
    import_module(f"radadapt.commands.{_name}").register(app)


def _offline_unless_pulling(argv: list[str]) -> None:
    """Only `radadapt models pull` may reach the network: every other command runs with the Hugging Face
    libraries switched to offline mode, so no library default can make a call the user did not ask for."""
    words = [a for a in argv if not a.startswith("-")]
    if words[:2] == ["models", "pull"]:
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def main() -> None:
    _offline_unless_pulling(sys.argv[1:])
    app()


if __name__ == "__main__":
    main()
