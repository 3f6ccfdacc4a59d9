"""The `costwise` command line: the app with every command module registered, and `run_cli`, the one
place errors become exit codes."""

from __future__ import annotations

import errno
import sys
from typing import Any

import typer

from ..core.errors import CostwiseError
from .app import app
# Importing a command module registers its commands; this order is the order `costwise --help` lists them.
from .commands import catalog, declared, runs, daemon, pipelines, demo, report, kueue  # noqa: F401, I001

# Where the environment, not costwise, is at fault: an unwritable or read-only home, a full disk.
ENVIRONMENT_ERRNOS = frozenset({
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR,
    errno.ENAMETOOLONG, errno.ELOOP,
})


def _database_errors() -> tuple[type[BaseException], ...]:
    # evaluated only when an exception reaches the clause: the CLI starts without SQLAlchemy
    from sqlalchemy.exc import OperationalError

    return (OperationalError,)


def command():
    """The click command of the app, its plain options converted without pydantic (coercion.py)."""
    from typer.main import get_command

    from .coercion import install

    built = get_command(app)
    install(built)
    return built


def run_cli(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code; the one place errors become exit codes and
    one line on stderr. Errors not listed here are bugs, and keep their traceback."""
    seen: dict[str, Any] = {}
    try:
        code = command()(args=argv, prog_name="costwise", standalone_mode=False, obj=seen)  # typer.Exit's code
        return code if isinstance(code, int) else 0
    except CostwiseError as exc:
        return _refuse(str(exc), exc.exit_code)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except typer.TyperException as exc:  # usage errors from typer's bundled click
        return _usage_error(exc)
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = f" {exc.filename!r}" if exc.filename else ""
        return _refuse(f"{exc.strerror}:{where} (check --home / COSTWISE_HOME and free space)", 2)
    except _database_errors() as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        where = f" {shown_url(seen['settings'].db_url)}" if "settings" in seen else ""
        return _refuse(f"the catalog{where} cannot be used: {reason[0] if reason else type(exc).__name__} "
                       f"(check --db / COSTWISE_DB, --home and free space)", 2)


def _usage_error(exc) -> int:
    message = exc.format_message() if hasattr(exc, "format_message") else ""
    if "\n" in message or not message:  # the help a bare command asks for, as click prints it
        if hasattr(exc, "show"):
            exc.show()
        return getattr(exc, "exit_code", 2)
    context = getattr(exc, "ctx", None)
    hint = f" (see '{context.command_path} --help')" if context is not None else ""
    return _refuse(message + hint, getattr(exc, "exit_code", 2))


def shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _refuse(message: str, code: int) -> int:
    typer.echo("error: " + " ".join(message.splitlines()), err=True)
    return code


def main() -> None:
    sys.exit(run_cli())


if __name__ == "__main__":
    main()
