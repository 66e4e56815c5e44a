"""``stockflow trace CORRELATION_ID``: one request's story from the embedded data dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def trace_command(
    correlation_id: Annotated[
        str,
        typer.Argument(
            help="The X-Correlation-ID of the request (echoed on every response, and the"
            " correlation_id of every problem).",
            show_default=False,
        ),
    ],
    data_dir: Annotated[
        Path,
        typer.Option(envvar="STOCKFLOW_DATA_DIR", help="The data dir of `stockflow up`."),
    ] = Path("data"),
    log_file: Annotated[
        Path | None,
        typer.Option(
            envvar="STOCKFLOW_LOG_FILE",
            help="The JSON log of `stockflow up --log-file`. Default: stockflow.log in the"
            " data dir.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the story as one JSON document.")
    ] = False,
) -> None:
    """Tell what one request did: the services it went through, the messages it caused and
    when, in time order, from the log lines and bus envelopes carrying its correlation id.

    Reads the embedded deployment's data dir (its log file and bus); exit 1 when the id is
    found nowhere, 2 when the data dir is not one.
    """
    from stockflow.runtime.trace import TraceError, read_story, render

    try:
        story = read_story(correlation_id, data_dir, log_file)
    except TraceError as error:
        typer.secho(str(error), err=True, fg=typer.colors.RED)
        code = 1 if "is in no log line" in str(error) else 2
        raise typer.Exit(code) from None
    typer.echo(json.dumps(story.as_json(), indent=2) if as_json else render(story))
