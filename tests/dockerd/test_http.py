"""pydockerd's HTTP layer over a real unix socket: streamed bodies, limits, drains, hijacked connections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydockerd._http import Hijacked, Request, Response, serve_connection
from pydockerd._router import Router

Client = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _app() -> Router:
    r = Router()

    async def count(req: Request) -> Response:
        n = 0
        async for chunk in req.stream():
            n += len(chunk)
        return Response.json({"bytes": n})

    async def whole(req: Request) -> Response:
        return Response.json({"bytes": len(req.body)})

    async def refuse(req: Request) -> Response:
        return Response.error(404, "No such thing")  # answers without reading the body

    async def small(req: Request) -> Response:
        return Response.json({"bytes": len(await req.read(limit=10))})

    async def echo(conn: Hijacked) -> None:
        await conn.write(b"hello\n")
        while data := await conn.read(4):
            await conn.write(data.upper())
        await conn.write(b"bye\n")
        conn.close_write()

    async def attach(req: Request) -> Response:
        return Response.hijack(echo, "application/vnd.docker.multiplexed-stream")

    r.add("POST", "/count", count, stream=True)
    r.add("POST", "/whole", whole)
    r.add("POST", "/refuse", refuse, stream=True)
    r.add("POST", "/small", small, stream=True)
    r.add("POST", "/attach", attach)
    return r


def _serve(tmp_path: Path, client: Client) -> None:
    path = str(tmp_path / "s.sock")

    async def main() -> None:
        app = _app()
        server = await asyncio.start_unix_server(lambda r, w: serve_connection(r, w, app), path=path)
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            try:
                await asyncio.wait_for(client(reader, writer), 20)
            finally:
                writer.close()
        finally:
            server.close()

    asyncio.run(main())


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def _chunked(parts: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def test_streamed_and_whole_bodies_on_one_connection(tmp_path: Path) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parts = [b"x" * 65536] * 80  # 5 MiB, chunked
        writer.write(b"POST /count HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(parts))
        status, _, body = await _response(reader)
        assert (status, json.loads(body)) == (200, {"bytes": 80 * 65536})
        writer.write(b"POST /whole HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\nabc")
        status, _, body = await _response(reader)
        assert (status, json.loads(body)) == (200, {"bytes": 3})

    _serve(tmp_path, client)


def test_unread_body_is_drained_and_the_connection_kept(tmp_path: Path) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"POST /refuse HTTP/1.1\r\nHost: d\r\nContent-Length: 100000\r\n\r\n" + b"y" * 100000)
        status, _, body = await _response(reader)
        assert (status, json.loads(body)) == (404, {"message": "No such thing"})
        writer.write(b"POST /whole HTTP/1.1\r\nHost: d\r\nContent-Length: 1\r\n\r\nz")
        status, _, body = await _response(reader)
        assert (status, json.loads(body)) == (200, {"bytes": 1})

    _serve(tmp_path, client)


def test_a_body_over_the_route_limit_is_413(tmp_path: Path) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"POST /small HTTP/1.1\r\nHost: d\r\nContent-Length: 11\r\n\r\n" + b"q" * 11)
        status, _, body = await _response(reader)
        assert status == 413
        assert json.loads(body) == {"message": "request body larger than 10 bytes"}

    _serve(tmp_path, client)


def test_hijack_with_upgrade(tmp_path: Path) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"POST /v1.50/attach HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nabcd")
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        assert head.startswith("HTTP/1.1 101 UPGRADED\r\n")
        assert "Upgrade: tcp" in head and "Content-Type: application/vnd.docker.multiplexed-stream" in head
        assert await reader.readexactly(10) == b"hello\nABCD"  # bytes sent with the head are not lost
        writer.write(b"efgh")
        assert await reader.readexactly(4) == b"EFGH"
        writer.write_eof()  # the client's half-close ends the handler's reading
        assert await reader.read() == b"bye\n"

    _serve(tmp_path, client)


def test_hijack_without_upgrade_is_a_raw_200(tmp_path: Path) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"POST /attach HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        assert head.startswith("HTTP/1.1 200 OK\r\n")
        assert "Content-Length" not in head and "Transfer-Encoding" not in head
        assert await reader.readexactly(6) == b"hello\n"
        writer.write_eof()
        assert await reader.read() == b"bye\n"

    _serve(tmp_path, client)
