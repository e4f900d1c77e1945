"""A small HTTP/1.1 client on asyncio streams: keep-alive connections to one host.

The load generator runs on the same CPUs as the server it measures, so what it spends per
request is taken from the server.

Kept rather than aiohttp's client, which cost 1.83x its CPU per request on the same requests (1.014 against 0.554 ms, best of seven; 1.5x was the bar; benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 this client can read."""


class ServerDisconnected(ProtocolError):
    """The server closed the connection before the response was complete."""


# What a request can fail with short of an HTTP status: refused or reset connections,
# timeouts (``TimeoutError`` is an ``OSError``) and broken or cut-off responses.
HTTP_ERRORS = (OSError, ProtocolError)


class Headers:
    """Response headers: case-insensitive, every value of a repeated header kept."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[str, list[str]] = {}

    def add(self, name: str, value: str) -> None:
        values = self._values.get(name.lower())
        if values is None:
            self._values[name.lower()] = [value]
        else:
            values.append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._values.get(name.lower())
        return ", ".join(values) if values else default

    def get_list(self, name: str) -> list[str]:
        """Every value of ``name`` in order, e.g. each ``Set-Cookie`` on its own."""
        return self._values.get(name.lower(), [])

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values


class Response:
    """Status, headers and body of one answer, and the path it answered."""

    __slots__ = ("_text", "content", "headers", "path", "status_code")

    def __init__(self, status_code: int, headers: Headers, content: bytes, path: str) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.path = path
        self._text: str | None = None

    @property
    def text(self) -> str:
        """The body decoded: decompressed first if the server compressed it."""
        if self._text is None:
            body = self.content
            encoding = (self.headers.get("content-encoding") or "").strip().lower()
            if encoding == "gzip":
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            elif encoding == "deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:
                    body = zlib.decompress(body, -zlib.MAX_WBITS)
            charset = "utf-8"
            for part in (self.headers.get("content-type") or "").split(";")[1:]:
                key, _, value = part.partition("=")
                if key.strip().lower() == "charset" and value.strip():
                    charset = value.strip().strip('"')
            try:
                self._text = body.decode(charset, errors="replace")
            except LookupError:
                self._text = body.decode("utf-8", errors="replace")
        return self._text


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        # Closing the transport is enough: waiting for the close costs CPU and tells nothing.
        self.writer.close()


class ConnectionPool:
    """A minimal HTTP/1.1 client: keep-alive connections to one host, shared by participants.

    At most ``max_connections`` connections are open at once, idle ones included. An idle
    connection older than ``keepalive_expiry`` seconds is closed instead of reused, as
    browsers do: the server may be closing it at that moment, and a request sent on it
    would get no answer at all. If a GET on a reused connection fails before any byte of
    the response arrives, it is sent once more on a new connection; a POST is never sent
    twice, as a retried submission could be stored twice.
    """

    def __init__(
        self, base_url: str, *, max_connections: int, keepalive_expiry: float, timeout: float
    ) -> None:
        split = urlsplit(base_url)
        if split.scheme != "http" or not split.hostname:
            raise ValueError(f"only http:// URLs are supported: {base_url}")
        self.host = split.hostname
        self.port = split.port or 80
        self.keepalive_expiry = keepalive_expiry
        self.timeout = timeout
        self.slots = asyncio.Semaphore(max_connections)
        self.idle: list[_Connection] = []
        # What every request sends, as httpx sent it.
        self.common = (
            f"Host: {split.netloc}\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\n"
            "Connection: keep-alive\r\nUser-Agent: load-participants\r\n"
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if not url.startswith("/"):
            # An absolute URL to the same host (redirects may carry one).
            split = urlsplit(url)
            url = (split.path or "/") + (f"?{split.query}" if split.query else "")
        lines = [f"{method} {url} HTTP/1.1\r\n", self.common]
        if headers:
            lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        body = b""
        if data is not None or method == "POST":
            body = urlencode(data or {}).encode()
            lines.append(
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n"
            )
        lines.append("\r\n")
        message = "".join(lines).encode() + body
        path = url.partition("?")[0]
        async with self.slots:
            connection = self._idle_take()
            if connection is not None:
                try:
                    return await self._exchange(connection, message, path)
                except _NothingReceived as failure:
                    if method != "GET":
                        raise failure.error from None
            return await self._exchange(await self._open(), message, path, fresh=True)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()

    def _idle_take(self) -> _Connection | None:
        """The most recently used idle connection still fit for reuse; older ones are closed."""
        expired = time.monotonic() - self.keepalive_expiry
        while self.idle:
            connection = self.idle.pop()
            if connection.idle_since < expired:
                # The rest were idle even longer.
                connection.close()
                self.close()
                return None
            if connection.reader.at_eof() or connection.writer.is_closing():
                connection.close()
                continue
            return connection
        return None

    async def _open(self) -> _Connection:
        async with asyncio.timeout(self.timeout):
            reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Connection(reader, writer)

    async def _exchange(
        self, connection: _Connection, message: bytes, path: str, *, fresh: bool = False
    ) -> Response:
        reader = connection.reader
        try:
            async with asyncio.timeout(self.timeout):
                connection.writer.write(message)
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial and not fresh:
                        raise _NothingReceived(ServerDisconnected("no response")) from exc
                    raise ServerDisconnected("connection closed in the response head") from exc
                except ConnectionError as exc:
                    # A reset hides bytes that came before it; they wait in the buffer.
                    if not fresh and not getattr(reader, "_buffer", b""):
                        raise _NothingReceived(exc) from exc
                    raise
                status, headers, keep_alive = _head_parse(head)
                while 100 <= status < 200:  # interim answers precede the real one
                    status, headers, keep_alive = _head_parse(await reader.readuntil(b"\r\n\r\n"))
                content, keep_alive = await _body_read(reader, status, headers, keep_alive)
        except asyncio.IncompleteReadError as exc:
            connection.close()
            raise ServerDisconnected("connection closed in the response body") from exc
        except (asyncio.LimitOverrunError, ValueError) as exc:
            connection.close()
            raise ProtocolError(str(exc)) from exc
        except BaseException:
            # A timeout, a reset or a cancelled task: the connection's state is unknown.
            connection.close()
            raise
        if keep_alive:
            connection.idle_since = time.monotonic()
            self.idle.append(connection)
        else:
            connection.close()
        return Response(status, headers, content, path)


class _NothingReceived(Exception):
    """A reused connection failed before any byte of the response arrived."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _head_parse(head: bytes) -> tuple[int, Headers, bool]:
    """Status, headers and whether the connection stays open, from a response head."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(rest[:3])
    headers = Headers()
    for line in lines[1:]:
        if line:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError(f"malformed header line: {line[:80]!r}")
            headers.add(name.strip(), value.strip())
    tokens = (headers.get("connection") or "").lower()
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    return status, headers, keep_alive


async def _body_read(
    reader: asyncio.StreamReader, status: int, headers: Headers, keep_alive: bool
) -> tuple[bytes, bool]:
    """The body, framed by chunks or Content-Length, and whether the connection is reusable."""
    if status in (204, 304):
        return b"", keep_alive
    if "chunked" in (headers.get("transfer-encoding") or "").lower():
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            chunks.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailer fields, unused
        return b"".join(chunks), keep_alive
    length = headers.get("content-length")
    if length is not None:
        size = int(length.split(",")[0])
        return (await reader.readexactly(size) if size else b""), keep_alive
    # Neither framing: the body runs until the server closes the connection.
    return await reader.read(), False


def cookie_parse(header: str) -> list[tuple[str, str, bool]]:
    """Name, value and whether it deletes the cookie, for each cookie in a Set-Cookie value.

    The server sends one plain ``name=value`` per header, followed by attributes; a quoted
    value, which needs unescaping, goes through ``SimpleCookie`` instead.
    """
    pair, *attributes = header.split(";")
    name, equals, value = pair.partition("=")
    name, value = name.strip(), value.strip()
    if not equals or not name or value.startswith('"'):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        return [
            (key, m.value, m["max-age"] == "0" or "1970" in m["expires"]) for key, m in jar.items()
        ]
    deleted = False
    for attribute in attributes:
        key, _, setting = attribute.partition("=")
        key = key.strip().lower()
        if (key == "max-age" and setting.strip() == "0") or (
            key == "expires" and "1970" in setting
        ):
            deleted = True
    return [(name, value, deleted)]
