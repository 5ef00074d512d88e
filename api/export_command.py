"""`conflictkb export`: the events of any filter as a file, as GET /v1/events.{csv,geojson,
ndjson} gives them (loaded by api/cli.py only when this command is named)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import time
import typing
from collections.abc import Callable
from contextlib import aclosing, contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

import click
from pydantic import TypeAdapter, ValidationError

from api.cli import _servers
from api.errors import Problem
from api.exports import EXPORT_FORMATS, export_body
from api.params import EventSortName, event_filter
from api.settings import Settings
from db.engine import make_engine
from db.filters import FILTER_FIELDS, EventFilter, FilterError
from db.queries.export import export_statement, stream_rows


@contextmanager
def _replaced_when_complete(path: Path) -> Iterator[BinaryIO]:
    """A file written beside `path` and renamed to it only once complete."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as sink:
            yield sink
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _event_filter_options(command: Callable) -> Callable:
    """An option for every event filter of the REST API (api/params.py's event_filter):
    the same names with dashes (`--date-from`), the same help and the same checks, so
    the command line and the API cannot drift apart. Repeatable where the API's are."""
    for name, annotation in reversed(typing.get_type_hints(event_filter, include_extras=True).items()):
        if name == "return":
            continue
        kind, query = typing.get_args(annotation)[:2]
        flag, help_text = _flag(name), query.description or ""
        if kind is bool:
            command = click.option(flag, name, is_flag=True, help=help_text)(command)
            continue
        repeatable = typing.get_origin(kind) is list
        if repeatable and "repeatable" not in help_text:
            help_text += " Repeatable."
        value = typing.get_args(kind)[0]  # list[X] or X | None
        if typing.get_origin(value) is typing.Annotated:  # (IsoDate, Count)
            value = typing.get_args(value)[0]
        choices = FILTER_FIELDS[name].choices if name in FILTER_FIELDS else ()
        value_type = click.Choice(choices) if choices else click.STRING
        metavar = {dt.date: "YYYY-MM-DD", int: "N"}.get(value)
        command = click.option(flag, name, type=value_type, multiple=repeatable, metavar=metavar,
                               help=help_text)(command)
    return command


async def _event_filter(options: dict) -> EventFilter:
    """The EventFilter of the options _event_filter_options made, checked as the API does."""
    hints = typing.get_type_hints(event_filter, include_extras=True)
    values = {}
    for name, value in options.items():
        try:
            values[name] = TypeAdapter(hints[name]).validate_python(list(value) if isinstance(value, tuple) else value)
        except ValidationError as exc:
            raise click.BadParameter(exc.errors()[0]["msg"], param_hint=_flag(name)) from None
    return await event_filter(**values)


def _flag(name: str) -> str:
    """A filter's option (`--date-from`)."""
    return f"--{name.replace('_', '-')}"


@click.command()
@click.option("--format", "format_name", type=click.Choice(list(EXPORT_FORMATS)), required=True,
              help="csv (ACLED's columns, then ours), geojson (a FeatureCollection) or ndjson (one event a line).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-", show_default=True,
              help="File to write; - for standard output.")
@click.option("--sort", type=click.Choice(typing.get_args(EventSortName)), default="-date", show_default=True,
              help="Order: relevance needs --q, distance needs --near.")
@_event_filter_options
@click.pass_obj
def export(settings: Settings, format_name: str, output: str, sort: str, **filters) -> None:
    """Export the events matching the filters, as GET /v1/events.{csv,geojson,ndjson} does.

    Rows are read in chunks and written as they come, so memory stays flat whatever the
    size. A file is written beside its name and renamed when complete: an export that
    fails leaves no partial file behind."""
    export_format = EXPORT_FORMATS[format_name]
    counted = 0

    async def count(chunks):
        nonlocal counted
        async with aclosing(chunks):
            async for rows in chunks:
                counted += len(rows)
                yield rows

    async def run(url: str, sink: BinaryIO) -> None:
        engine = make_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                statement = await export_statement(conn, await _event_filter(filters), sort)
                # closed before the connection, whatever stops it (a reader gone: | head)
                async with aclosing(export_body(export_format, count(stream_rows(conn, statement)))) as body:
                    async for data in body:
                        sink.write(data)
        finally:
            await engine.dispose()

    started = time.monotonic()
    target = Path(output) if output != "-" else None
    with _servers(settings, need_redis=False) as endpoints:
        try:
            if target is None:
                asyncio.run(run(endpoints.database_url, click.get_binary_stream("stdout")))
            else:
                with _replaced_when_complete(target) as sink:
                    asyncio.run(run(endpoints.database_url, sink))
        except FilterError as exc:
            message = " ".join([*map(str, exc.path[1:]), exc.message_named(_flag)])
            raise click.BadParameter(message, param_hint=_flag(exc.field)) from None
        except Problem as exc:  # a `where` the grammar refuses
            raise click.UsageError(exc.detail) from None
        except BrokenPipeError:  # `conflictkb export ... | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return
    click.echo(f"export: {counted:,} events to {output if target else 'standard output'} "
               f"in {time.monotonic() - started:.1f} s", err=True)
