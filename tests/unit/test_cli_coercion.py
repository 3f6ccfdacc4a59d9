"""The command line converts its plain options without pydantic (cli/coercion.py) and answers exactly as
typer's own converters do, errors included; --help is click's plain help listing each command whole."""

from pathlib import Path
from typing import Optional

import pytest
import typer
from typer.main import get_command

from scheduler.cli import coercion
from scheduler.cli.main import command, run_cli

THIN_COMMANDS = (("run",), ("runs",), ("show",), ("logs",), ("cancel",), ("shapes",), ("pipeline", "run"))


def sample_app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def go(count: int = typer.Option(50, "--count"), name: Optional[str] = typer.Option(None, "--name"),
           out: Optional[Path] = typer.Option(None, "--out"), there: Optional[Path] = typer.Option(None, "--there", exists=True),
           env: list[str] = typer.Option([], "--env"), files: list[Path] = typer.Option([], "--file"),
           flag: bool = typer.Option(False, "--flag")):
        pass

    return app


def parse(args: list[str], light: bool):
    """ctx.params of `go ARGS`, or the error message typer gives."""
    built = get_command(sample_app())
    if light:
        assert coercion.install(built) == 10  # the seven options, typer's two completion options, --help
    try:
        return built.make_context("go", list(args)).params
    except typer.BadParameter as exc:
        return f"error: {exc.format_message()}"


@pytest.mark.parametrize("args", [
    [], ["--count", "3"], ["--count", "-3"], ["--count", "+3"], ["--count", " 3"], ["--count", "1_000"],
    ["--count", "3.0"], ["--count", "abc"], ["--count", ""], ["--count", "0x10"], ["--count", "\u0663"],
    ["--name", "x y"], ["--name", ""], ["--out", "a/b"], ["--out", ""], ["--there", "/nonexistent/x"],
    ["--there", "/"], ["--env", "A=1", "--env", "B=2"], ["--file", "a", "--file", "b"], ["--flag"],
])
def test_the_light_converter_answers_as_typer_does(args):
    assert parse(args, light=True) == parse(args, light=False)


@pytest.mark.parametrize("path", THIN_COMMANDS, ids=" ".join)
def test_every_option_of_the_thin_commands_is_converted_without_pydantic(path):
    built = command()
    for name in path:
        built = built.commands[name]
    params = [*built.params, built._help_option]
    assert params and all(type(p._runtime_param).__name__ == "PlainRuntimeParam" for p in params), \
        [p.name for p in params if type(p._runtime_param).__name__ != "PlainRuntimeParam"]


def test_help_lists_each_command_whole_without_rich(capsys):
    assert run_cli(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Usage: costwise [OPTIONS] COMMAND [ARGS]..." in out
    assert ("report Cost report over the runs that finished in [since, until): spend, idle spend, savings, "
            "right-sizing, and a summary of what changed since the period before (same length) and why.") in out
    assert "╭" not in out  # no rich panel


def test_a_bad_value_is_one_line_naming_the_option(capsys):
    assert run_cli(["runs", "--limit", "many"]) == 2
    assert capsys.readouterr().err == ("error: Invalid value for '--limit': Input should be a valid integer, unable "
                                       "to parse string as an integer (see 'costwise runs --help')\n")
