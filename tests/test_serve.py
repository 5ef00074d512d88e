"""`conflictkb serve` as a user runs it: embedded servers, one server per data dir,
CLI commands sharing the running database, Ctrl-C leaving nothing behind, data kept."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import CONFLICTKB, free_port



def _processes_using(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(data_dir) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


class Server:
    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        self.env.update(CONFLICTKB_DATA_DIR=str(data_dir), PORT=str(self.port), CONFLICTKB_LOG_LEVEL="warning")
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        # Its own process group, like a terminal job: Ctrl-C signals the whole group.
        self.proc = subprocess.Popen([str(CONFLICTKB), "serve"], env=self.env, start_new_session=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited early:\n{self.proc.stdout.read()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail("serve did not become ready")

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(CONFLICTKB), *args], env=self.env, capture_output=True, text=True, timeout=120)

    def ctrl_c(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=60)

    def terminate(self) -> int:
        """What `docker stop`, systemd or `kill` do: SIGTERM to the main process only."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def get(self, path: str, **params) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=10)


@pytest.fixture
def data_dir(tmp_path: Path):
    """A data directory whose servers are killed after the test, even if it failed."""
    path = tmp_path / "var"
    yield path
    for proc in _processes_using(path):
        proc.kill()


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def test_serve_runs_stops_cleanly_and_keeps_its_data(data_dir: Path):
    """Ctrl-C stops everything, SIGTERM too, and a restart serves the same data."""
    server = Server(data_dir).start()
    try:
        # the seed: the article's 14 events and the UCDP Syria extract's 16,566
        assert server.get("/v1/events", count="true", limit=1).json()["total"] == 14 + 16_566
        listed = server.get("/v1/events", admin1="Hasakah", external_id="conflictkb-seed:al-qasr-strike").json()["data"]
        assert [e["place"]["name"] for e in listed] == ["Al-Qasr"]
        event_id, created_at = listed[0]["id"], listed[0]["created_at"]

        second = server.run("serve")
        assert second.returncode != 0
        assert "already serving" in second.stderr and str(server.proc.pid) in second.stderr

        postmaster = _postmaster_pid(data_dir)
        seeded = server.run("seed")
        assert seeded.returncode == 0, seeded.stderr
        assert "nothing to change" in seeded.stdout
        # The command used the running database and left it running for the server.
        assert _postmaster_pid(data_dir) == postmaster and psutil.pid_exists(postmaster)
        assert server.get("/readyz").json()["status"] == "ok"

        # an import while serving: the next answer has it, cached or not
        assert server.get("/v1/events", external_id="ucdp-ged:214797", count="true").json()["total"] == 1
        assert server.get("/v1/events/acled:SYR1").status_code == 404
        acled = data_dir.parent / "acled.csv"
        acled.write_text("event_id_cnty,event_date,event_type,sub_event_type,actor1,country,latitude,longitude,fatalities\n"
                         "SYR1,05 January 2022,Battles,Armed clash,SDF,Syria,36.5,40.7,2\n")
        imported = server.run("import", "acled", str(acled))
        assert "import acled: 1 inserted" in imported.stdout, imported.stderr
        assert server.get("/v1/events/acled:SYR1").json()["fatalities"]["best"] == 2
    finally:
        exit_code = server.ctrl_c()
    assert exit_code == 0, server.proc.stdout.read()
    assert _processes_using(data_dir) == []
    assert not (data_dir / "postgres" / "postmaster.pid").exists()

    again = Server(data_dir).start()
    try:
        listed = again.get("/v1/events", admin1="Hasakah", external_id="conflictkb-seed:al-qasr-strike").json()["data"]
        assert (listed[0]["id"], listed[0]["created_at"]) == (event_id, created_at)
    finally:
        exit_code = again.terminate()
    assert exit_code in (0, 128 + signal.SIGTERM), again.proc.stdout.read()
    assert _processes_using(data_dir) == []


def test_a_cli_command_without_a_server_starts_and_stops_its_own(data_dir: Path):
    server = Server(data_dir)
    server.env["CONFLICTKB_SEED_DATASETS"] = "false"  # the article only: this is about the servers
    first = server.run("seed")
    assert first.returncode == 0, first.stderr
    assert "events +14" in first.stdout and "ucdp-ged" not in first.stdout
    leftover = _processes_using(data_dir)
    assert leftover == [], [(p.cmdline(), p.status(), p.ppid(), p.create_time()) for p in leftover]
    assert "nothing to change" in server.run("seed").stdout


def test_a_stale_redis_pid_file_never_names_a_victim(data_dir: Path):
    """After a crash or reboot the pid in redis.pid may belong to anyone by now."""
    import redis as redis_client

    from db.embedded import EmbeddedRedis

    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        embedded = EmbeddedRedis(data_dir)
        embedded.dir.mkdir(parents=True)
        embedded.pidfile.write_text(str(bystander.pid))
        embedded.socket.touch()
        embedded.start()
        try:
            assert redis_client.Redis(unix_socket_path=str(embedded.socket)).ping()
        finally:
            embedded.stop()
        assert bystander.poll() is None  # still alive
    finally:
        bystander.kill()
        bystander.wait()


def _redis_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "redis" / "redis.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None  # between a death and a restart


def _is_redis_server(pid: int | None) -> bool:
    try:
        return pid is not None and "redis-server" in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def test_a_killed_redis_is_restarted_by_the_server_and_caching_resumes(data_dir: Path):
    server = Server(data_dir)
    server.env.update(CONFLICTKB_SEED_DATASETS="false", CONFLICTKB_REDIS_RETRY="0.5")
    server.start()
    try:
        path, params = "/v1/events", {"admin1": "Hasakah", "limit": 3}
        assert [server.get(path, **params).headers["x-cache"] for _ in range(2)] == ["miss", "hit"]

        killed = _redis_pid(data_dir)
        assert _is_redis_server(killed)
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while not (_redis_pid(data_dir) not in (None, killed) and _is_redis_server(_redis_pid(data_dir))):
            assert time.monotonic() < deadline, "redis-server was not restarted"
            time.sleep(0.05)
        restarted = _redis_pid(data_dir)

        # The restarted Redis is empty: a miss (or answers straight from PostgreSQL while
        # the cache leaves Redis alone after the error), then hits again.
        seen = []
        deadline = time.monotonic() + 15
        while seen[-2:] != ["miss", "hit"]:
            assert time.monotonic() < deadline, seen
            response = server.get(path, **params)
            assert response.status_code == 200
            seen.append(response.headers["x-cache"])
            time.sleep(0.1)
        assert server.get("/readyz").json()["status"] == "ok"
    finally:
        exit_code = server.ctrl_c()
    output = server.proc.stdout.read()
    assert exit_code == 0, output
    assert f"embedded Redis died (killed by SIGKILL); restarted it on {data_dir / 'redis' / 'redis.sock'} " \
           f"(pid {restarted})" in output, output
    assert _processes_using(data_dir) == []  # the restarted Redis stopped with the server
