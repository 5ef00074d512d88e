"""`conflictkb apikey create|list|revoke|set-limit`: the API keys writes need, and their
rate limits (db/api_keys.py; loaded by api/cli.py only when this command is named)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncConnection

from api.cli import _migrate, _servers
from api.settings import Settings
from db.api_keys import (ROLES, ApiKey, ApiKeyRefError, NewApiKey, Role, create_api_key, list_api_keys, revoke_api_key,
                         set_api_key_rate_limit)
from db.engine import make_engine

T = TypeVar("T")


async def _in_transaction(database_url: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


async def create_key(database_url: str, role: Role, name: str, rate_limit: int | None = None) -> NewApiKey:
    return await _in_transaction(database_url, lambda conn: create_api_key(conn, role, name, rate_limit))


async def list_keys(database_url: str) -> list[ApiKey]:
    return await _in_transaction(database_url, list_api_keys)


async def revoke_key(database_url: str, ref: str) -> tuple[ApiKey, bool]:
    return await _in_transaction(database_url, lambda conn: revoke_api_key(conn, ref))


async def set_key_limit(database_url: str, ref: str, rate_limit: int | None) -> ApiKey:
    return await _in_transaction(database_url, lambda conn: set_api_key_rate_limit(conn, ref, rate_limit))


def _on_database(settings: Settings, command: Callable[..., Awaitable[T]], *args: object) -> T:
    """`command(database_url, *args)` on the configured or embedded PostgreSQL, migrated first."""
    with _servers(settings, need_redis=False) as endpoints:
        _migrate(endpoints.database_url)
        return asyncio.run(command(endpoints.database_url, *args))


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _limit(rate_limit: int | None) -> str:
    return "role's" if rate_limit is None else str(rate_limit)


def key_table(keys: list[ApiKey]) -> str:
    """The keys as a table a terminal shows aligned (never a token: none is kept)."""
    header = ("id", "prefix", "role", "name", "created", "last used", "revoked", "rate limit")
    rows = [header, *((str(k.id), k.prefix, k.role, k.name, _when(k.created_at), _when(k.last_used_at),
                       _when(k.revoked_at), _limit(k.rate_limit)) for k in keys)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


@click.group()
def apikey() -> None:
    """Make, list and revoke the API keys writes need; set their rate limits."""


_RATE_LIMIT_HELP = ("Units the key may spend per rate-limit window (CONFLICTKB_RATE_LIMIT_WINDOW); "
                    "every request costs at least one. Default: its role's quota (CONFLICTKB_RATE_LIMIT_<ROLE>).")


@apikey.command()
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="reader: reads (when CONFLICTKB_REQUIRE_KEY_FOR_READS is set); editor: also writes; "
                   "admin: also administration.")
@click.option("--name", default=None, help="Who or what holds the key (shown in `apikey list` and in the "
                                           "history of what it changes). Default: the role and today's date.")
@click.option("--rate-limit", type=click.IntRange(min=1), default=None, help=_RATE_LIMIT_HELP)
@click.pass_obj
def create(settings: Settings, role: Role, name: str | None, rate_limit: int | None) -> None:
    """Make a key and print it, once: only its hash is kept.

    The key alone goes to standard output (`KEY=$(conflictkb apikey create ...)`), the
    rest to standard error."""
    name = (name or f"{role} key of {dt.date.today().isoformat()}").strip()
    if not name:
        raise click.BadParameter("a key's name cannot be blank", param_hint="--name")
    made = _on_database(settings, create_key, role, name, rate_limit)
    limit = f", rate limit {rate_limit} units per window" if rate_limit else ""
    click.echo(f"apikey: made {role} key {name!r} (id {made.key.id}, prefix {made.key.prefix}{limit}); "
               "this is the only time it is shown:", err=True)
    click.echo(made.token)
    click.echo(f"Send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`, e.g.\n"
               f"  curl -H 'Authorization: Bearer {made.token}' http://{settings.host}:{settings.port}/v1/apikeys/me",
               err=True)


@apikey.command(name="list")
@click.pass_obj
def list_command(settings: Settings) -> None:
    """List every key (revoked ones too): id, prefix, role, name, when made, last used
    (to the minute) and revoked."""
    keys = _on_database(settings, list_keys)
    click.echo(key_table(keys) if keys else "apikey: no keys yet (`conflictkb apikey create --role editor`)")


@apikey.command()
@click.argument("key")
@click.pass_obj
def revoke(settings: Settings, key: str) -> None:
    """Revoke KEY (its id or prefix from `apikey list`, or the key itself): requests
    carrying it are refused from then on. The key stays listed, as revoked."""
    try:
        revoked, now = _on_database(settings, revoke_key, key)
    except ApiKeyRefError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"apikey: {revoked.role} key {revoked.name!r} ({revoked.id}) "
               f"{'revoked' if now else 'was already revoked'} {_when(revoked.revoked_at)}")


class _RateLimit(click.ParamType):
    name = "UNITS|default"

    def convert(self, value, param, ctx) -> int | None:
        if value is None or (isinstance(value, str) and value.strip().lower() == "default"):
            return None
        try:
            units = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a number of units nor `default`", param, ctx)
        if units < 1:
            self.fail(f"a rate limit is at least 1 unit, not {units}", param, ctx)
        return units


@apikey.command(name="set-limit")
@click.argument("key")
@click.argument("units", type=_RateLimit())
@click.pass_obj
def set_limit(settings: Settings, key: str, units: int | None) -> None:
    """Give KEY (its id or prefix from `apikey list`, or the key itself) a rate limit of
    its own: UNITS per rate-limit window, or `default` for its role's quota again. It
    applies from the key's next request on."""
    try:
        changed = _on_database(settings, set_key_limit, key, units)
    except ApiKeyRefError as exc:
        raise click.ClickException(str(exc)) from exc
    limit = f"{units} units per window" if units is not None else "its role's quota"
    click.echo(f"apikey: {changed.role} key {changed.name!r} ({changed.id}) now has {limit}")
