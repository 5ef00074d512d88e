"""Test fixtures: the real embedded PostgreSQL and Redis, started once per test run.

All xdist workers share one embedded PostgreSQL and one Redis in `var/test/` (the
shared-use locks of db/embedded.py start them once and stop them after the last
worker). A template database is migrated and seeded once per content of db/ and
seeds/; each worker reads from its own copy of it, and a test that writes asks for
`fresh_database_url`, a private copy dropped afterwards.
"""

from __future__ import annotations

import asyncio
import csv
import fcntl
import functools
import gzip
import hashlib
import io
import os
import sys
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.settings import Settings
from db.api_keys import create_api_key
from db.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedReplica
from db.engine import make_engine
from db.generate import generate
from db.imports.records import Format, ImportReport
from db.imports.run import IMPORT_CONNECTIONS, import_file, import_seed_datasets
from db.migrate import upgrade
from db.seed import load_seed_dir, seed_id

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA_DIR = ROOT / "var" / "test"
# the command-line program, as a user runs it
CONFLICTKB = Path(sys.executable).parent / "conflictkb"
TEST_SECRET = "test-secret-key"


def _content_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "db").rglob("*.py"), *(ROOT / "seeds").glob("*")]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


async def _migrate_and_seed(url: str) -> None:
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url, pool_size=1)
    async with engine.begin() as conn:
        await load_seed_dir(conn)
    await engine.dispose()


async def _import_seed_datasets(url: str) -> None:
    engine = make_engine(url, pool_size=2)
    try:
        await import_seed_datasets(engine, ROOT / "seeds")
    finally:
        await engine.dispose()


class Databases:
    """Creates databases on the shared server from the seeded template."""

    def __init__(self, pg: EmbeddedPostgres):
        self.pg = pg
        self.template = f"template_{_content_hash()}"
        self._lock = TEST_DATA_DIR / "databases.lock"

    def _exists(self, name: str) -> bool:
        return "1" in self.pg._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").split()

    def ensure_template(self) -> None:
        with open(self._lock, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._exists(self.template):
                return
            building = self.template + "_building"
            self.pg._psql(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            self.pg._psql(f'CREATE DATABASE "{building}"')
            asyncio.run(_migrate_and_seed(self.pg.url(building)))
            self.pg._psql(f'ALTER DATABASE "{building}" RENAME TO "{self.template}"')
            # Old templates from earlier code are of no more use.
            for name in self.pg._psql("SELECT datname FROM pg_database WHERE datname LIKE 'template\\_%'").split():
                if name != self.template and not name.endswith("_building"):
                    self.pg._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def ensure_shipped_template(self) -> str:
        """A template of the seeded knowledge base with the datasets of seeds/ imported
        too (what `conflictkb serve` ships: 16,580 events), built once per content."""
        self.ensure_template()
        shipped = self.template + "_shipped"
        with open(self._lock, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self._exists(shipped):
                building = shipped + "_building"
                self.pg._psql(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                self.pg._psql(f'CREATE DATABASE "{building}" TEMPLATE "{self.template}"')
                asyncio.run(_import_seed_datasets(self.pg.url(building)))
                self.pg._psql(f'ALTER DATABASE "{building}" RENAME TO "{shipped}"')
        return shipped

    def create(self, name: str, template: str | None = None) -> str:
        with open(self._lock, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.pg._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.pg._psql(f'CREATE DATABASE "{name}" TEMPLATE "{template or self.template}"')
        return self.pg.url(name)

    def drop(self, name: str) -> None:
        self.pg._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def worker_id_name(worker_id: str) -> str:
    return worker_id if worker_id != "master" else "gw"


@pytest.fixture(scope="session")
def embedded_postgres() -> Iterator[EmbeddedPostgres]:
    TEST_DATA_DIR.mkdir(parents=True, exist_ok=True)
    pg = EmbeddedPostgres(TEST_DATA_DIR, database="postgres")
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def embedded_replica(embedded_postgres: EmbeddedPostgres) -> Iterator[EmbeddedReplica]:
    """A hot-standby streaming replica of the suite's PostgreSQL (`var/test/replica-1`),
    shared by the workers that ask for it; every database of the primary is on it."""
    replica = EmbeddedReplica(embedded_postgres, 1)
    replica.start()
    yield replica
    replica.stop()


@pytest.fixture(scope="session")
def replica_url_of(embedded_replica: EmbeddedReplica) -> Callable[[str], str]:
    """replica_url_of(database_url): the URL of the same database on `embedded_replica`,
    once the replica has it (a database just created on the primary takes a moment)."""

    def replica_url(database_url: str) -> str:
        name = make_url(database_url).database
        deadline = time.monotonic() + 10
        while "1" not in embedded_replica.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").split():
            assert time.monotonic() < deadline, f"database {name} not on the replica after 10 s"
            time.sleep(0.02)
        return embedded_replica.url(name)

    return replica_url


@pytest.fixture(scope="session")
def embedded_redis() -> Iterator[EmbeddedRedis]:
    redis = EmbeddedRedis(TEST_DATA_DIR)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture(scope="session")
def databases(embedded_postgres: EmbeddedPostgres) -> Databases:
    dbs = Databases(embedded_postgres)
    dbs.ensure_template()
    return dbs


@pytest.fixture(scope="session")
def database_url(databases: Databases, worker_id_name: str) -> Iterator[str]:
    """This worker's copy of the seeded knowledge base; tests using it only read."""
    name = f"test_{worker_id_name}"
    yield databases.create(name)
    databases.drop(name)


@pytest.fixture(scope="session")
def shipped_database_url(databases: Databases, worker_id_name: str) -> Iterator[str]:
    """This worker's copy of the knowledge base as shipped (the seeds and the UCDP
    extract): for what the real data costs to read. Tests using it only read."""
    name = f"shipped_{worker_id_name}"
    url = databases.create(name, template=databases.ensure_shipped_template())
    yield url
    databases.drop(name)


@pytest.fixture
def fresh_database_url(databases: Databases) -> Iterator[str]:
    """A private copy of the seeded knowledge base for a test that writes."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield databases.create(name)
    databases.drop(name)


@pytest.fixture(scope="session")
def redis_url(embedded_redis: EmbeddedRedis, worker_id_name: str) -> str:
    # One Redis database per worker keeps their keys apart.
    number = int(worker_id_name[2:] or 0) % 16 if worker_id_name.startswith("gw") else 0
    return f"{embedded_redis.url}?db={number}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_settings(**overrides) -> Settings:
    """The tests' settings: rate limits on, but generous enough for a worker's whole
    run from one address (tests/test_rate_limits.py sets low ones)."""
    generous = dict(rate_limit_anonymous=10**9, rate_limit_reader=10**9, rate_limit_editor=10**9,
                    rate_limit_admin=10**9, failed_auth_lockout_after=10**9)
    return Settings(secret_key=TEST_SECRET, data_dir=TEST_DATA_DIR, **{**generous, **overrides})


@asynccontextmanager
async def app_client(database_url: str, redis_url: str, settings: Settings | None = None, *,
                     replica_urls: list[str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process, with its lifespan run."""
    app = create_app(settings or make_settings(), database_url=database_url, redis_url=redis_url,
                     replica_urls=replica_urls)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            http.app = app  # tests that watch the engine (statement counts) reach it here
            yield http


@pytest.fixture(scope="session")
async def client(database_url: str, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app on this worker's seeded database (read-only tests)."""
    async with app_client(database_url, redis_url) as http:
        yield http


@pytest.fixture
async def fresh_client(fresh_database_url: str, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a private database (tests that write)."""
    async with app_client(fresh_database_url, redis_url) as http:
        yield http


def event_url(key: str) -> str:
    """REST path of a seeded event by its seed key."""
    return f"/v1/events/conflictkb-seed:{key}"


# --- writes -------------------------------------------------------------------------

# A new event's REST body (GraphQL's input: the same fields in camelCase).
AIRSTRIKE = {"event_type": "Explosions/Remote violence", "sub_event_type": "Air/drone strike",
             "date_start": "2018-05-01", "place": str(seed_id("place", "al-qasr")),
             "summary": "An air strike on a village south of Al-Shadadi."}


@pytest.fixture
async def fresh_engine(fresh_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a private copy of the seeded knowledge base (connections for two
    sessions at once, and their overflow)."""
    engine = make_engine(fresh_database_url, pool_size=2)
    yield engine
    await engine.dispose()


def run_conflictkb(database_url: str, *args: str) -> subprocess.CompletedProcess:
    """`conflictkb ARGS` as a user runs it, on `database_url` (no embedded servers, no
    Redis), its output as text."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CONFLICTKB_DATA_DIR")}
    return subprocess.run([str(CONFLICTKB), *args], env={**env, "DATABASE_URL": database_url}, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
async def keys(fresh_database_url: str) -> dict[str, str]:
    """An API key per role on the test's private database."""
    engine = make_engine(fresh_database_url, pool_size=1)
    async with engine.begin() as conn:
        made = {role: (await create_api_key(conn, role, f"test {role}")).token for role in ("reader", "editor", "admin")}
    await engine.dispose()
    return made


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def execute_statements(url: str, *statements: str) -> None:
    """Statements in one transaction on the database at `url`, as a writer beside the app would."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def statements_run(client: httpx.AsyncClient) -> Iterator[list[str]]:
    """The SQL statements the app behind `client` (app_client) runs meanwhile."""
    engine = client.app.state.engine.sync_engine
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listener)


async def count_rows(url: str, sql: str) -> int:
    """What `sql` (a count) finds in the database at `url`, outside the app."""
    engine = make_engine(url, pool_size=1)
    async with engine.connect() as conn:
        count = await conn.scalar(text(sql))
    await engine.dispose()
    return count


os.environ.setdefault("CONFLICTKB_LOG_LEVEL", "warning")


@asynccontextmanager
async def generated_database(databases: Databases, events: int, seed: int) -> AsyncIterator[str]:
    """A private copy of the seeded knowledge base plus `events` generated events."""
    name = f"t_gen_{uuid.uuid4().hex[:8]}"
    url = databases.create(name)
    engine = make_engine(url, pool_size=2)
    try:
        await generate(engine, events, seed=seed, batch=300)
    finally:
        await engine.dispose()
    try:
        yield url
    finally:
        databases.drop(name)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, str]], gz: bool = False) -> Path:
    """A CSV file of `rows` (gzipped if asked); columns a row lacks are left empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    data = buffer.getvalue().encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


async def import_into(database_url: str, path: Path, file_format: Format, **options) -> ImportReport:
    engine = make_engine(database_url, pool_size=IMPORT_CONNECTIONS)
    try:
        return await import_file(engine, path, file_format, **options)
    finally:
        await engine.dispose()


UCDP_EXTRACT = ROOT / "seeds" / "ucdp-ged-syria-2016-2019.csv.gz"


@functools.cache
def ucdp_extract_rows() -> tuple[list[str], list[dict[str, str]]]:
    """The UCDP Syria extract of seeds/: its columns and rows (read once per process;
    copy a row before changing it)."""
    with gzip.open(UCDP_EXTRACT, "rt", encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames), list(reader)


async def websocket_handshake(app, headers: list[tuple[bytes, bytes]]) -> list[dict]:
    """What `app` sends to a GraphQL websocket asking to connect with `headers`."""
    sent: list[dict] = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "websocket", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
             "headers": [(b"host", b"test"), *headers], "client": ("127.0.0.1", 1), "root_path": "",
             "scheme": "ws", "subprotocols": ["graphql-transport-ws"]}
    await app(scope, receive, send)
    return sent
