"""A minimal POS application: the local API's client, as a till would use it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp


class ApiProblemError(Exception):
    """The gateway answered with an RFC 9457 problem."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{status} {body.get('type')}: {body.get('detail')}")


class PosClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> PosClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.session.close()

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        async with self.session.request(method, self.base_url + path, json=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise ApiProblemError(resp.status, data)
            return data

    async def call_problem(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A call expected to be refused: the problem document (an error if it was not refused)."""
        try:
            await self.call(method, path, body, headers)
        except ApiProblemError as err:
            return err.body
        raise AssertionError(f"{method} {path} was not refused")

    async def refusal(self, method: str, path: str, body: Any = None) -> tuple[int, str]:
        """A call expected to be refused: its status and the reason given."""
        problem = await self.call_problem(method, path, body)
        return int(problem["status"]), str(problem["detail"])

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", "/v1/status")
        return result

    async def new_basket(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", "/v1/baskets")
        return result

    async def add_line(self, basket_id: str, **line: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"/v1/baskets/{basket_id}/lines", line)
        return result

    async def basket(self, basket_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"/v1/baskets/{basket_id}")
        return result

    async def complete_cash(self, basket_id: str, amount: int, key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        body = {"tenders": [{"kind": "cash", "amount": amount}]}
        result: dict[str, Any] = await self.call("POST", f"/v1/baskets/{basket_id}/complete", body, headers)
        return result

    async def pay(self, basket_id: str, code: str, amount: int | None = None, key: str | None = None) -> dict[str, Any]:
        """Scan-to-pay toward the basket; answers with the payment's outcome and the basket."""
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        body: dict[str, Any] = {"code": code} if amount is None else {"code": code, "amount": amount}
        result: dict[str, Any] = await self.call("POST", f"/v1/baskets/{basket_id}/payments", body, headers)
        return result

    async def complete(self, basket_id: str, cash: int = 0, key: str | None = None) -> dict[str, Any]:
        """Complete with the payments taken, plus ``cash`` if any."""
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        body = {"tenders": [{"kind": "cash", "amount": cash}] if cash else []}
        result: dict[str, Any] = await self.call("POST", f"/v1/baskets/{basket_id}/complete", body, headers)
        return result

    async def cancel(self, basket_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("POST", f"/v1/baskets/{basket_id}/cancel")
        return result

    async def connect_events(self) -> dict[str, Any]:
        """Open the event stream; return its hello message."""
        self.ws = await self.session.ws_connect(self.base_url + "/v1/events")
        return await self.next_event()

    async def next_event(self, event_type: str | None = None, within: float = 10.0) -> dict[str, Any]:
        """The next event (of ``event_type``, skipping others) from the stream."""
        assert self.ws is not None, "connect_events() first"
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {event_type or 'event'} within {within} s")
            async with asyncio.timeout(left):
                msg = await self.ws.receive_json()
            if event_type is None or msg.get("type") == event_type:
                result: dict[str, Any] = msg
                return result

    async def wait_status(self, check: Callable[[dict[str, Any]], bool], within: float = 20.0) -> dict[str, Any]:
        """Poll the status until ``check(status)`` is true."""
        deadline = time.monotonic() + within
        while True:
            st = await self.status()
            if check(st):
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"status did not reach the expected state: {st}")
            await asyncio.sleep(0.05)
