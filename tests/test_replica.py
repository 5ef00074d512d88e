"""The embedded streaming replica (db/embedded.py, EmbeddedReplica): a hot standby of the
suite's PostgreSQL that follows its new databases and their writes, and one of a private
primary of its own for stopping, crashing and rebuilding."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from db.embedded import EmbeddedPostgres, EmbeddedReplica
from tests.conftest import count_rows, execute_statements

DEADLINE_SECONDS = 10


async def wait_for_count(url: str, sql: str, expected: int) -> None:
    """Poll `sql` (a count) at `url` until it is `expected`, or fail at the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        try:
            found = await count_rows(url, sql)
        except DBAPIError as error:  # a table the replica has yet to replay the creation of
            found = error
        if found == expected:
            return
        assert time.monotonic() < deadline, f"{sql}: {found}, not {expected}, after {DEADLINE_SECONDS} s"
        time.sleep(0.02)


def replica_sees(replica: EmbeddedReplica, sql: str, expected: str) -> None:
    """Poll `sql` on the replica until it answers `expected`, or fail at the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (found := replica.psql(sql).strip()) != expected:
        assert time.monotonic() < deadline, f"{sql}: {found}, not {expected}, after {DEADLINE_SECONDS} s"
        time.sleep(0.02)


async def test_the_replica_is_in_recovery_and_the_primary_is_not(
        embedded_replica: EmbeddedReplica, replica_url_of: Callable[[str], str], database_url: str):
    assert await count_rows(replica_url_of(database_url), "SELECT count(*) FROM (SELECT pg_is_in_recovery() AS r) s "
                                                          "WHERE r") == 1
    assert await count_rows(database_url, "SELECT count(*) FROM (SELECT pg_is_in_recovery() AS r) s WHERE r") == 0


async def test_a_new_database_and_its_writes_reach_the_replica(
        embedded_replica: EmbeddedReplica, replica_url_of: Callable[[str], str], fresh_database_url: str):
    # fresh_database_url is created from a template after the replica started
    await execute_statements(fresh_database_url, "CREATE TABLE probe (id int)", "INSERT INTO probe VALUES (1)")
    await wait_for_count(replica_url_of(fresh_database_url), "SELECT count(*) FROM probe", 1)
    # and what the knowledge base held already is there too
    assert await count_rows(replica_url_of(fresh_database_url), "SELECT count(*) FROM events") == \
        await count_rows(fresh_database_url, "SELECT count(*) FROM events")


async def test_paused_replay_holds_writes_back_until_resumed(
        embedded_replica: EmbeddedReplica, replica_url_of: Callable[[str], str], fresh_database_url: str):
    replica_url = replica_url_of(fresh_database_url)
    await execute_statements(fresh_database_url, "CREATE TABLE probe (id int)")
    await wait_for_count(replica_url, "SELECT count(*) FROM pg_class WHERE relname = 'probe'", 1)
    embedded_replica.pause_replay()
    try:
        paused_at = embedded_replica.replay_lsn()
        await execute_statements(fresh_database_url, "INSERT INTO probe VALUES (1)")
        written_at = embedded_replica.primary._psql("SELECT pg_current_wal_lsn()").strip()
        # the replica has received the write (no sleeping on the chance it has)...
        replica_sees(embedded_replica, f"SELECT pg_last_wal_receive_lsn() >= '{written_at}'", "t")
        # ...and applied none of it
        assert await count_rows(replica_url, "SELECT count(*) FROM probe") == 0
        assert embedded_replica.replay_lsn() == paused_at
        assert embedded_replica.psql(f"SELECT '{paused_at}'::pg_lsn < '{written_at}'").strip() == "t"
    finally:
        embedded_replica.resume_replay()
    await wait_for_count(replica_url, "SELECT count(*) FROM probe", 1)


# --------------------------------------------------------------------------- a private primary


@pytest.fixture(scope="module")
def private_primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """A primary of this module's own (a small cluster: its base backup takes a moment), so
    stopping its replica disturbs no other test."""
    primary = EmbeddedPostgres(tmp_path_factory.mktemp("replicated"), database="postgres")
    primary.start()
    primary._psql("CREATE TABLE probe (id int)")
    yield primary
    primary.stop()


def is_running(replica: EmbeddedReplica) -> bool:
    return (replica.pgdata / "postmaster.pid").exists()


def test_stopped_and_started_again_the_replica_catches_up(private_primary: EmbeddedPostgres):
    replica = EmbeddedReplica(private_primary, 1)
    replica.start()
    built = (replica.pgdata / EmbeddedReplica.BUILT_MARK).stat().st_mtime_ns
    replica.stop()
    assert not is_running(replica)
    assert private_primary._psql("SELECT count(*) FROM pg_replication_slots").strip() == "0"

    private_primary._psql("INSERT INTO probe VALUES (1)")  # while it is stopped
    replica.start()
    try:
        assert (replica.pgdata / EmbeddedReplica.BUILT_MARK).stat().st_mtime_ns == built  # reused, not rebuilt
        replica_sees(replica, "SELECT count(*) FROM probe", "1")
        assert replica.psql("SELECT pg_is_in_recovery()").strip() == "t"
    finally:
        replica.stop()
    private_primary._psql("DELETE FROM probe")


def test_a_replica_left_by_a_crashed_user_is_adopted_and_stopped_by_the_last(private_primary: EmbeddedPostgres):
    starter = (f"import sys; from pathlib import Path; from db.embedded import EmbeddedPostgres, EmbeddedReplica\n"
               f"p = EmbeddedPostgres(Path({str(private_primary.data_dir)!r}), database='postgres'); p.start()\n"
               f"EmbeddedReplica(p, 2).start(); print('started', flush=True); sys.stdin.read()")
    crashed = subprocess.Popen([sys.executable, "-c", starter], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        assert crashed.stdout.readline().strip() == "started"
    finally:
        os.kill(crashed.pid, signal.SIGKILL)
        crashed.wait()
    replica = EmbeddedReplica(private_primary, 2)
    assert is_running(replica)  # nobody stopped it
    replica.start()
    replica.stop()
    assert not is_running(replica)


def test_a_half_made_replica_directory_is_rebuilt(private_primary: EmbeddedPostgres):
    replica = EmbeddedReplica(private_primary, 3)
    replica.pgdata.mkdir(mode=0o700)
    (replica.pgdata / "PG_VERSION").write_text("16\n")  # as a base backup cut short leaves it
    replica.start()
    try:
        private_primary._psql("INSERT INTO probe VALUES (3)")
        replica_sees(replica, "SELECT count(*) FROM probe WHERE id = 3", "1")
    finally:
        replica.stop()
        private_primary._psql("DELETE FROM probe")
