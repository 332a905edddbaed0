"""One HTTPS exchange with a wallet's merchant API, reduced to bytes or the reason there are none.

What did not leave (no connection, a TLS handshake that failed) is
``UNREACHABLE``: nothing can have been charged. What left but came back as
no answer (a timeout, a reset, a non-200, more than :data:`MAX_ANSWER` bytes)
is ``UNKNOWN``: the money may have moved.
"""

from __future__ import annotations

import ssl

import aiohttp

from protocols.micropay import Answer, Reply

MAX_ANSWER = 64 * 1024


class ProviderHttp:
    def __init__(self, timeout_seconds: float, connect_seconds: float, tls: ssl.SSLContext) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds, sock_connect=min(connect_seconds, timeout_seconds))
        self.tls = tls
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, content_type: str, max_bytes: int = MAX_ANSWER) -> bytes | Reply:
        """The answer's bytes, or the reply the flow gets when there are none."""
        return await self._exchange("POST", url, body, {"Content-Type": content_type}, max_bytes)

    async def get(self, url: str, max_bytes: int) -> bytes | Reply:
        return await self._exchange("GET", url, b"", {}, max_bytes)

    async def _exchange(
        self, method: str, url: str, body: bytes, headers: dict[str, str], max_bytes: int
    ) -> bytes | Reply:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        context: ssl.SSLContext | bool = self.tls if url.startswith("https:") else False
        try:
            async with self._session.request(method, url, data=body or None, headers=headers, ssl=context) as resp:
                if resp.status != 200:
                    return Reply(Answer.UNKNOWN, note=f"HTTP {resp.status}")
                chunks, size = [], 0
                async for chunk in resp.content.iter_any():
                    size += len(chunk)
                    if size > max_bytes:
                        return Reply(Answer.UNKNOWN, note=f"an answer over {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except aiohttp.ClientConnectorCertificateError as err:
            refused = f"TLS: the provider's certificate was refused ({err.certificate_error})"
            return Reply(Answer.UNREACHABLE, note=refused)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            return Reply(Answer.UNREACHABLE, note=f"no connection: {type(err).__name__}")
        except (aiohttp.ClientError, TimeoutError) as err:
            return Reply(Answer.UNKNOWN, note=f"no answer: {type(err).__name__}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
