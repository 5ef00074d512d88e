"""The embedded Redis under supervision (db/embedded.py): restarted once when it dies,
whoever else shares it; never brought back after a deliberate stop."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import psutil
import redis as redis_client

from db.embedded import EmbeddedRedis


def _servers_on(socket: Path) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "redis-server" in " ".join(p.info["cmdline"] or []) and str(socket) in " ".join(p.info["cmdline"])]


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_two_supervising_users_restart_it_once_and_the_last_stop_is_final(tmp_path: Path, caplog):
    caplog.set_level(logging.WARNING, logger="db.embedded")
    first, second = EmbeddedRedis(tmp_path), EmbeddedRedis(tmp_path)  # as two processes sharing it
    first.start(supervise=True)
    second.start(supervise=True)
    try:
        [killed] = _servers_on(first.socket)
        os.kill(killed, signal.SIGKILL)
        _wait_for(lambda: _servers_on(first.socket) not in ([], [killed]))
        time.sleep(2 * EmbeddedRedis.SUPERVISE_INTERVAL_SECONDS)  # both supervisors have looked since
        [restarted] = _servers_on(first.socket)
        assert redis_client.Redis(unix_socket_path=str(first.socket)).ping()
        restarts = [r.getMessage() for r in caplog.records if "restarted it on" in r.getMessage()]
        assert len(restarts) == 1 and f"(pid {restarted})" in restarts[0]

        first.stop()  # not the last user: Redis stays, under the other's watch
        assert _servers_on(first.socket) == [restarted]
    finally:
        first.stop()
        second.stop()
    time.sleep(2 * EmbeddedRedis.SUPERVISE_INTERVAL_SECONDS)
    assert _servers_on(first.socket) == []  # stopped on purpose: nobody brought it back
