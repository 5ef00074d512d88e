"""The `conflictkb` command: serve, migrate, seed, import, generate, export (api/export_command.py),
apikey (api/apikey_command.py)."""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import json
import logging
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from api.logs import configure_logging
from api.settings import Settings, normalise_database_url
from db.embedded import Endpoints, EmbeddedServerError, embedded_servers

log = logging.getLogger("conflictkb")

# prometheus_client's own setting: where each process keeps its series (db/metrics.py). Named
# here, not imported from there: it must be set before prometheus_client is first imported.
PROMETHEUS_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def _servers(settings: Settings, need_redis: bool = True, supervise_redis: bool = False,
             replicas: int = 0) -> Iterator[Endpoints]:
    """The database and Redis to use: the configured URLs, or embedded servers (an
    embedded Redis restarted whenever it dies, if `supervise_redis`; with an embedded
    PostgreSQL, `replicas` streaming replicas of it)."""
    try:
        with embedded_servers(settings.data_dir, settings.database_url, settings.redis_url,
                              need_redis=need_redis, supervise_redis=supervise_redis,
                              replicas=replicas) as endpoints:
            endpoints.database_url = normalise_database_url(endpoints.database_url)
            yield endpoints
    except EmbeddedServerError as exc:
        raise click.ClickException(str(exc)) from exc


def _migrate(database_url: str) -> None:
    from db.migrate import upgrade

    upgrade(database_url)


async def _seed(database_url: str, with_datasets: bool = True) -> str:
    from db.bulk import BulkLoadRunning, finish_interrupted_bulk_load
    from db.engine import make_engine
    from db.imports.run import import_seed_datasets
    from db.seed import SEEDS_DIR, load_seed_dir

    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            try:
                finished = await finish_interrupted_bulk_load(conn)
            except BulkLoadRunning as running:
                raise click.ClickException(str(running)) from running
            if finished:
                click.echo("seed: finished an interrupted bulk load (indexes and monthly rollup built)")
            report = await load_seed_dir(conn)
        imported = await import_seed_datasets(engine, SEEDS_DIR) if with_datasets else []
    finally:
        await engine.dispose()
    return "\n".join([report.summary(), *(f"seed: {line}" for line in imported)])


def _exit_on_termination_signals() -> None:
    """SIGTERM (docker stop, systemd, kill) and SIGHUP unwind like Ctrl-C, so the
    embedded servers this process started are stopped on the way out. (uvicorn, after
    its graceful shutdown, re-raises the signal it caught; without a handler SIGTERM
    would end the process on the spot.)"""

    def leave(signum: int, _frame) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGHUP, leave)


class _LazyGroup(click.Group):
    """Subcommands whose code is imported only when they are named: `export` builds its
    options from the API's parameters (FastAPI and the query layer), which would make
    every other command start 0.6 s later. `--help` lists them by the line kept here
    (tests/test_cli.py checks it is the command's own), so listing them imports
    none of them."""

    lazy = {
        "apikey": ("api.apikey_command:apikey",
                   "Make, list and revoke the API keys writes need; set their rate limits."),
        "export": ("api.export_command:export",
                   "Export the events matching the filters, as GET /v1/events.{csv,geojson,ndjson} does."),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attribute = self.lazy[name][0].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        # a lazy command listed by a stand-in holding its line, not by the command itself
        listed = [click.Command(name, help=self.lazy[name][1]) if name in self.lazy else self.get_command(ctx, name)
                  for name in names]
        rows = [(name, command.get_short_help_str(limit)) for name, command in zip(names, listed)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
@click.pass_context
def main(ctx: click.Context, log_level: str | None) -> None:
    """conflictkb: a knowledge base of conflict events and the claims behind them."""
    settings = Settings()
    if log_level:
        settings.log_level = log_level
    configure_logging(settings.log_level, settings.log_format)
    _exit_on_termination_signals()
    ctx.obj = settings


@main.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Bring the database schema up to date."""
    with _servers(settings, need_redis=False) as endpoints:
        _migrate(endpoints.database_url)
    click.echo("migrate: up to date")


@main.command()
@click.pass_obj
def seed(settings: Settings) -> None:
    """Load seeds/ (idempotent: a second run changes nothing)."""
    with _servers(settings, need_redis=False) as endpoints:
        _migrate(endpoints.database_url)
        click.echo(asyncio.run(_seed(endpoints.database_url, settings.seed_datasets)))


@main.command()
@click.option("--events", "count", type=click.IntRange(min=1), required=True, help="How many events to add.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same rows.")
@click.option("--batch", type=click.IntRange(min=100), default=20_000, show_default=True)
@click.pass_obj
def generate(settings: Settings, count: int, seed: int, batch: int) -> None:
    """Add COUNT realistic synthetic events (for benchmarks; deterministic)."""
    from sqlalchemy.exc import DBAPIError

    from db.bulk import BulkLoadRunning
    from db.engine import make_engine
    from db.generate import WorldExists, generate as generate_events, log_progress

    async def run(url: str) -> None:
        # A million events' index builds and history stamping take minutes: the
        # generator is maintenance, with no statement budget.
        engine = make_engine(url, pool_size=2, statement_timeout=0)
        bar = _progress_bar(count, "events", "generate")
        try:
            if bar is None:  # (not a terminal: a line per batch, for logs)
                await generate_events(engine, count, seed=seed, batch=batch, progress=log_progress(count))
            else:
                with bar:
                    await generate_events(engine, count, seed=seed, batch=batch,
                                          progress=lambda done, _elapsed: bar.update(done - bar.n))
        finally:
            await engine.dispose()

    with _servers(settings, need_redis=False) as endpoints:
        _migrate(endpoints.database_url)
        asyncio.run(_seed(endpoints.database_url, settings.seed_datasets))
        try:
            asyncio.run(run(endpoints.database_url))
        except (BulkLoadRunning, WorldExists) as refused:
            raise click.ClickException(str(refused)) from refused
        except DBAPIError as error:
            raise _failed_on_the_database("generate", error, "what the load left is finished by the next start") \
                from error


def _failed_on_the_database(command: str, error: Exception, after: str) -> click.ClickException:
    """A command's failure on the database as one line (its first), not a traceback."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return click.ClickException(f"{command} failed on the database: {reason}; {after}")


def _progress_bar(total: int, unit: str, label: str, unit_scale: bool = False):
    """A progress bar on standard error (done, rate, time to go) when it is a terminal;
    None otherwise (a log has no use for a redrawn line)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=unit_scale, desc=label, file=sys.stderr, smoothing=0.1)


@main.group(name="import")
def import_group() -> None:
    """Import a dataset's file (UCDP GED, ACLED): idempotent, streamed, reported."""


def _metrics_dir(settings: Settings) -> Path:
    """Where `serve` keeps its processes' /metrics series, unless PROMETHEUS_MULTIPROC_DIR says."""
    return Path(os.environ.get(PROMETHEUS_MULTIPROC_DIR) or settings.data_dir / "metrics")


def _count_in_served_metrics(settings: Settings) -> None:
    """An import beside `serve` on the same data directory counts its rows in the server's
    /metrics (the multiprocess directory `serve` made; see _fresh_metrics_dir)."""
    served = _metrics_dir(settings)
    if served.is_dir() and "prometheus_client" not in sys.modules:
        os.environ.setdefault(PROMETHEUS_MULTIPROC_DIR, str(served))


def _import_command(file_format_name: str):
    """`conflictkb import <dataset> FILE`: one command per dataset format."""

    def command(settings: Settings, file: Path, dry_run: bool, batch: int, into_empty: bool | None) -> None:
        _count_in_served_metrics(settings)
        from db.engine import make_engine
        from db.imports import formats
        from db.bulk import BulkLoadRunning
        from db.imports.run import IMPORT_CONNECTIONS, ImportRefused, import_file
        from db.imports.source_file import ImportFileError
        from sqlalchemy.exc import DBAPIError

        file_format = formats.BY_NAME[file_format_name]
        # by the file's bytes (its rows are not known until read), with the rows per second beside
        bar = _progress_bar(file.stat().st_size, "B", f"import {file.name}", unit_scale=True)

        def progress(done: int, size: int, rows: int) -> None:
            if bar is not None:
                bar.update(done - bar.n)
                elapsed = bar.format_dict["elapsed"]
                bar.set_postfix_str(f"{rows:,} rows, {rows / elapsed if elapsed else 0:,.0f} rows/s")

        def on_reject(rejected) -> None:
            click.echo(f"{file}:{rejected.line}: rejected: {rejected.reason}", err=True)

        async def run(url: str):
            engine = make_engine(url, pool_size=IMPORT_CONNECTIONS)
            try:
                return await import_file(engine, file, file_format, dry_run=dry_run, batch_size=batch,
                                         progress=progress, on_reject=on_reject, into_empty=into_empty)
            finally:
                await engine.dispose()

        with _servers(settings, need_redis=False) as endpoints:
            _migrate(endpoints.database_url)
            try:
                if bar is not None:
                    with bar:
                        report = asyncio.run(run(endpoints.database_url))
                else:
                    report = asyncio.run(run(endpoints.database_url))
            except (ImportFileError, ImportRefused, BulkLoadRunning) as error:
                raise click.ClickException(str(error)) from error
            except DBAPIError as error:
                raise _failed_on_the_database(f"import {file.name}", error, "the batches committed stay: the same "
                                              "command again goes on from there") from error
        click.echo(f"import {file_format_name}{' (dry run, nothing written)' if dry_run else ''}: "
                   f"{report.summary()}")

    command.__doc__ = f"Import a {file_format_name.upper()} CSV file (plain or gzipped)."
    command = click.pass_obj(command)
    command = click.option("--batch", type=click.IntRange(min=1), default=5000, show_default=True,
                           help="Rows per transaction.")(command)
    command = click.option("--dry-run", is_flag=True, help="Read, check and count everything; write nothing.")(
        command)
    command = click.option("--into-empty", is_flag=True, default=None,
                           help="A first load: the events' indexes built once at the end (the default when the "
                                "knowledge base holds no event; refused when it does).")(command)
    command = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))(command)
    return import_group.command(name=file_format_name)(command)


_import_command("ucdp")
_import_command("acled")


@contextmanager
def _only_server(settings: Settings, url: str) -> Iterator[None]:
    """Refuse a second `serve` on the same data directory instead of sharing it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = settings.data_dir / "serve.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        try:
            running = json.loads(lock_path.read_text())
            where = f" (pid {running['pid']}, serving {running['url']})"
        except (ValueError, KeyError, OSError):
            where = ""
        raise click.ClickException(
            f"conflictkb is already serving from {settings.data_dir.resolve()}{where}. "
            "Stop it first (Ctrl-C), or set CONFLICTKB_DATA_DIR to another directory.")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "url": url}).encode())
        yield
    finally:
        os.close(fd)


def _fresh_metrics_dir(settings: Settings) -> None:
    """Where the serving processes keep their /metrics series (db/metrics.py), emptied at
    every start (prometheus_client's multiprocess mode: a series left by another run
    would be summed in). Set before anything imports prometheus_client, and inherited by
    the workers."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory was set")
    directory = _metrics_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[PROMETHEUS_MULTIPROC_DIR] = str(directory)


@main.command()
@click.option("--host", default=None, help="Interface to listen on [HOST, default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [PORT, default 8000].")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [CONFLICTKB_WORKERS, default: the machine's cores].")
@click.option("--prepare/--no-prepare", default=True, show_default=True,
              help="Migrate and load seeds/ before serving.")
@click.pass_obj
def serve(settings: Settings, host: str | None, port: int | None, workers: int | None, prepare: bool) -> None:
    """Serve the REST and GraphQL API (starting embedded servers if no URLs are set).

    With several workers, the embedded servers are started once, here, and each worker is
    a process of its own on the same port; the answer cache, single-flight, rate limits
    and the data generation live in Redis and PostgreSQL, so they are the same whichever
    worker answers, and /metrics sums all of them. SIGTERM or Ctrl-C stops accepting
    connections and lets requests in flight finish (CONFLICTKB_SHUTDOWN_TIMEOUT)."""
    import uvicorn

    from api.logs import logging_config

    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    url = f"http://{host}:{port}"
    with _only_server(settings, url), _servers(settings, supervise_redis=True,
                                               replicas=settings.local_replicas) as endpoints:
        _fresh_metrics_dir(settings)
        if prepare:
            _migrate(endpoints.database_url)
            click.echo(asyncio.run(_seed(endpoints.database_url, settings.seed_datasets)))
        click.echo(f"conflictkb: serving {url} with {workers} worker{'s' if workers > 1 else ''} "
                   "(REST /v1, GraphQL /graphql, docs /docs, metrics /metrics); Ctrl-C stops")
        served = dict(host=host, port=port, log_config=logging_config(settings.log_level, settings.log_format),
                      log_level=settings.log_level, access_log=False,  # api/observability.py writes them
                      timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
                      # the proxies the rate limits believe (api/ratelimit.py) are the ones uvicorn believes
                      proxy_headers=True, forwarded_allow_ips=[str(network) for network in settings.trusted_proxies])
        if workers == 1:
            from api.app import create_app, tune_collector

            app = create_app(settings, database_url=endpoints.database_url, redis_url=endpoints.redis_url,
                             replica_urls=endpoints.replica_urls or None)
            tune_collector()
            uvicorn.run(app, **served)
        else:
            # each worker makes its app (api.app.worker_app) from the settings, these servers included
            os.environ.update(DATABASE_URL=endpoints.database_url, REDIS_URL=endpoints.redis_url,
                              CONFLICTKB_LOG_LEVEL=settings.log_level, CONFLICTKB_LOG_FORMAT=settings.log_format,
                              CONFLICTKB_DATA_DIR=str(settings.data_dir.resolve()))
            if endpoints.replica_urls:
                os.environ["DATABASE_REPLICA_URLS"] = ",".join(endpoints.replica_urls)
            uvicorn.run("api.app:worker_app", factory=True, workers=workers, **served)
    click.echo("conflictkb: stopped")


if __name__ == "__main__":
    sys.exit(main())
