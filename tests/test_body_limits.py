"""Request bodies: a write's key is checked before its body is read, a body over its
limit is refused (413) before it is parsed, a slow one is cut off (408), and a server
under many large bodies keeps its memory flat."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import AIRSTRIKE, TEST_SECRET, app_client, as_, free_port, make_settings

SMALL = {"max_body_bytes": 4_000, "max_graphql_body_bytes": 2_000, "body_timeout_seconds": 0.5}


class Body:
    """A request body sent in chunks (chunked, no Content-Length), remembering how many of
    its chunks the server asked for."""

    def __init__(self, chunks: int, size: int = 1_000, pause: float = 0.0):
        self.chunks, self.size, self.pause = chunks, size, pause
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            if self.pause:
                await asyncio.sleep(self.pause)
            self.read += 1
            yield b" " * self.size


@pytest.fixture
async def small_client(fresh_database_url: str, redis_url: str):
    async with app_client(fresh_database_url, redis_url, make_settings().model_copy(update=SMALL)) as http:
        yield http


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    return problem


async def test_a_body_declared_too_large_is_refused_unread(small_client, keys):
    body = Body(10)  # the length is declared: nothing of the body is needed to refuse it
    response = await small_client.post("/v1/events", content=body, headers={
        **as_(keys["editor"]), "Content-Type": "application/json", "Content-Length": "10000"})
    problem = assert_problem(response, 413)
    assert problem["type"] == "/problems/body-too-large"
    assert "4,000 bytes" in problem["detail"]
    assert response.headers["connection"] == "close"
    assert body.read == 0


async def test_a_chunked_body_is_refused_once_past_the_limit(small_client, keys):
    body = Body(100)  # 100 kB, no Content-Length
    response = await small_client.post("/v1/events", content=body,
                                       headers={**as_(keys["editor"]), "Content-Type": "application/json"})
    assert "4,000 bytes" in assert_problem(response, 413)["detail"]
    assert body.read == 5  # read up to the first byte past the limit, no further


async def test_graphql_has_its_own_smaller_limit(small_client):
    declared = await small_client.post("/graphql", json={"query": "{ __typename }", "variables": {"x": "y" * 3_000}})
    problem = assert_problem(declared, 413)
    assert "2,000 bytes" in problem["detail"]
    # and as a GraphQL client reads an error
    assert problem["errors"] == [{"message": problem["detail"], "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]
    body = Body(50)
    streamed = await small_client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert_problem(streamed, 413)
    assert body.read == 3
    within = await small_client.post("/graphql", json={"query": "{ __typename }", "variables": {"x": "y" * 1_500}})
    assert within.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("headers", [{}, as_("ckb_not-a-key"), {"Authorization": "Basic eDp5"}])
async def test_a_write_without_a_valid_key_is_refused_before_its_body_is_read(small_client, headers):
    for declared in ({}, {"Content-Length": "10000"}):
        body = Body(10)
        response = await small_client.post("/v1/events", content=body,
                                           headers={**headers, **declared, "Content-Type": "application/json"})
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert body.read == 0
    patch = await small_client.patch(f"/v1/events/{'0' * 8}-0000-0000-0000-{'0' * 12}", content=Body(10))
    assert_problem(patch, 401)
    # with no body to leave unread, the connection is kept
    delete = await small_client.delete(f"/v1/events/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=headers)
    assert_problem(delete, 401)
    assert "connection" not in delete.headers


async def test_a_write_within_the_limit_still_works(small_client, keys):
    created = await small_client.post("/v1/events", json=AIRSTRIKE, headers=as_(keys["editor"]))
    assert created.status_code == 201, created.text
    chunked = Body(0)
    listed = await small_client.request("GET", "/v1/events", params={"limit": 1}, content=chunked)
    assert listed.status_code == 200


async def test_a_body_too_slow_is_cut_off(small_client, keys):
    started = time.monotonic()
    body = Body(10, size=10, pause=0.2)  # 100 bytes over 2 s; the deadline is 0.5 s
    response = await small_client.post("/v1/events", content=body,
                                       headers={**as_(keys["editor"]), "Content-Type": "application/json"})
    problem = assert_problem(response, 408)
    assert problem["type"] == "/problems/body-timeout" and "0.5 seconds" in problem["detail"]
    assert time.monotonic() - started < 1.5
    assert body.read < 10


# --- a real server under eight 50 MB bodies at once ------------------------------------

MB = 1 << 20
LARGE = 50 * MB


class RssWatch:
    """The peak resident memory of a process, sampled every 10 ms in a thread."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def server(fresh_database_url: str, redis_url: str, keys, tmp_path: Path):
    """The app under uvicorn in a process of its own, on the test's database."""
    port = free_port()
    log = (tmp_path / "server.log").open("wb")  # a file: a pipe nobody reads could fill and stall it
    env = {**os.environ, "DATABASE_URL": fresh_database_url, "REDIS_URL": redis_url,
           "CONFLICTKB_SECRET_KEY": TEST_SECRET, "CONFLICTKB_DATA_DIR": str(Path(__file__).parent.parent / "var/test"),
           # memory is measured here, not quotas: 24 bodies from one address must all reach the server
           "CONFLICTKB_RATE_LIMITS": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


async def _large_body() -> AsyncIterator[bytes]:
    chunk = b" " * MB
    for _ in range(LARGE // MB):
        yield chunk


async def _send_declared(port: int, path: str, headers: dict[str, str]) -> int:
    """POST 50 MB with its Content-Length, reading the answer before sending the body: the
    server answers a body it refuses unread without waiting for it. The status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = {"Host": "127.0.0.1", "Content-Type": "application/json", "Content-Length": str(LARGE), **headers}
        writer.write(f"POST {path} HTTP/1.1\r\n".encode()
                     + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode() + b"\r\n")
        await writer.drain()
        status = int((await asyncio.wait_for(reader.readline(), 10)).split()[1])
        try:  # and the body all the same, as a client that does not wait would
            chunk = b" " * MB
            for _ in range(LARGE // MB):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        return status
    finally:
        writer.close()


async def _send_chunked(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> int | None:
    """POST 50 MB chunked; the status, or None when the server closed the connection
    before the client had sent it all (and the answer was lost with it)."""
    try:
        return (await http.post(path, content=_large_body(), headers={**headers, "Content-Type": "application/json"})
                ).status_code
    except httpx.TransportError:
        return None


def test_eight_large_bodies_at_once_leave_memory_flat(server, keys):
    url, pid = server
    port = int(url.rsplit(":", 1)[1])
    editor = as_(keys["editor"])

    async def rounds() -> list[list[int | None]]:
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=32)) as http:
            # warm: every path below once, small, so that idle memory includes what they load
            assert (await http.post("/v1/events", json=AIRSTRIKE)).status_code == 401
            assert (await http.post("/graphql", json={"query": "{ __typename }"})).status_code == 200
            assert (await http.post("/v1/events", content=b"{}", headers=editor)).status_code == 422
            await asyncio.sleep(0.5)
            watch.idle = psutil.Process(pid).memory_info().rss
            with watch:
                answers = []
                for path, headers in (("/v1/events", {}), ("/graphql", {}), ("/v1/events", editor)):
                    answers.append(await asyncio.gather(
                        *(_send_declared(port, path, headers) for _ in range(4)),
                        *(_send_chunked(http, path, headers) for _ in range(4))))
            # and the server still answers
            assert (await http.get("/v1/events", params={"limit": 1})).status_code == 200
            return answers

    watch = RssWatch(pid)
    unauthenticated, graphql, authenticated = asyncio.run(rounds())
    grown = (watch.peak - watch.idle) / MB
    print(f"idle {watch.idle / MB:.0f} MB, peak {watch.peak / MB:.0f} MB; answers {unauthenticated} {graphql} {authenticated}")
    assert grown < 50, f"RSS grew {grown:.0f} MB over idle ({watch.idle / MB:.0f} MB)"
    # answered before the body: 401 without a key, 413 past the limit; a chunked body's
    # answer may be lost with the connection the server closes rather than read the rest
    assert unauthenticated[:4] == [401] * 4 and set(unauthenticated[4:]) <= {401, None}
    assert graphql[:4] == [413] * 4 and set(graphql[4:]) <= {413, None}
    assert authenticated[:4] == [413] * 4 and set(authenticated[4:]) <= {413, None}
