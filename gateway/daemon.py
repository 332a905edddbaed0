"""The daemon's lifecycle: start every part in one TaskGroup, stop cleanly.

On SIGTERM or SIGINT the gateway stops taking new baskets, lets in-flight
completions finish, makes one last attempt to sync, closes the journal and
exits 0. Everything a cashier was told is done is already on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from gateway.api.app import build_app
from gateway.api.door import Door, GuardedSite, connection_budget, raise_fd_limit
from gateway.config import GatewayConfig
from gateway.errors import AddressInUseError, StartupError
from gateway.ops import systemd
from gateway.ops.supervise import supervised
from gateway.reload import reload
from gateway.services import Services
from protocols.errors import GatewayError

log = structlog.get_logger("posgw.daemon")

DRAIN_TIMEOUT = 10.0
FINAL_SYNC_TIMEOUT = 3.0


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.services = Services.build(config)
        self.stopping = asyncio.Event()
        self.port: int | None = None
        self.door: Door | None = None  # the API's connection count, once listening

    def request_stop(self) -> None:
        self.stopping.set()

    def request_reload(self) -> None:
        """SIGHUP: the safe parts of the config file take effect now (``gateway/reload.py``)."""
        self.config = reload(self.services, self.config)

    async def run(self) -> None:
        svc = self.services
        await svc.journal.open()
        await svc.joining.restore()  # customers enrolled here are members here, before the first sale
        await svc.shifts.restore()  # the shift open when the daemon stopped is open still
        # Payments a previous run left open: listed before the till can take new ones,
        # settled in the background (querying a provider may take its deadline).
        leftovers = await svc.journal.payments.open_payments()
        refunds_left = await svc.journal.payments.open_refunds()
        api = self.config.api
        runner = web.AppRunner(
            build_app(svc),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=DRAIN_TIMEOUT,
            keepalive_timeout=api.keepalive_timeout,
        )
        await runner.setup()
        budget = connection_budget(api.max_connections, raise_fd_limit())
        site = GuardedSite(runner, api.host, api.port, budget, api.first_byte_timeout)
        try:
            try:
                await site.start()
            except OSError as err:
                where = f"{self.config.api.host}:{self.config.api.port}"
                if err.errno == errno.EADDRINUSE:
                    raise AddressInUseError(f"the API address {where} is already in use (another posgw?)") from err
                raise StartupError(f"the API cannot listen on {where}: {err.strerror or err}") from err
            self.port = int(runner.addresses[0][1])
            self.door = site.door
            log.info(
                "gateway_started",
                terminal=self.config.terminal.terminal_id,
                api=f"{self.config.api.host}:{self.port}",
                devices=[d.name for d in self.config.devices],
                members_cached=len(svc.directory.members or {}),
                payments_to_resolve=len(leftovers),
                refunds_to_finish=len(refunds_left),
            )
            for why in self.config.refused_plugins:
                log.warning("driver_plugin_refused", reason=why)
            systemd.notify("READY=1\nSTATUS=taking sales")

            # A retry after a failure settles what is still open of what the previous run left, as the
            # journal has it now: never again one it already settled, never a payment this run started.
            left_ids = {p.payment_id for p in leftovers}
            refund_ids = {p.payment_id for p in refunds_left}

            async def settle_leftover_payments() -> None:
                open_now = await svc.journal.payments.open_payments()
                await svc.desk.resolve([p for p in open_now if p.payment_id in left_ids])

            async def finish_leftover_refunds() -> None:
                open_now = await svc.journal.payments.open_refunds()
                await svc.refund_desk.finish([p for p in open_now if p.payment_id in refund_ids])

            async with asyncio.TaskGroup() as tg:
                # Every task supervised (gateway/ops/supervise.py): an error in one is told and retried,
                # never allowed to end the TaskGroup and with it the daemon.
                jobs: list[tuple[str, Callable[[], Awaitable[Any]], bool]] = [
                    ("sync", svc.sync.run, False),
                    ("rules-refresh", svc.refresher.run, False),
                    ("scans", svc.scans.run, False),
                    ("payments-resolve", settle_leftover_payments, True),
                    ("refunds-finish", finish_leftover_refunds, True),
                    *((f"device:{s.device.name}", s.run, False) for s in svc.supervisors),
                    ("watchdog", lambda: systemd.watchdog(self._healthy), True),  # returns at once without systemd
                ]
                if svc.mqtt is not None:
                    jobs.append(("mqtt", svc.mqtt.run, False))
                workers = [
                    tg.create_task(supervised(name, work, svc.hub, once=once), name=name) for name, work, once in jobs
                ]
                await self.stopping.wait()
                log.info("gateway_stopping", in_flight=svc.intake.in_flight)
                systemd.notify("STOPPING=1\nSTATUS=finishing sales and payments in progress")
                svc.intake.draining = True
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRAIN_TIMEOUT):
                        await svc.intake.wait_idle()
                # A payment is never cut off half way: its flow ends (paid, declined, reversed) first.
                await svc.desk.wait_idle()
                for task in workers:
                    task.cancel()
            await self._final_sync()
        finally:
            svc.hub.close()
            await runner.cleanup()
            await svc.client.close()
            await svc.desk.close()
            await svc.journal.close()
            log.info("gateway_stopped")

    async def _healthy(self) -> bool:
        """For the watchdog: the journal answers (a sale could be recorded)."""
        _, checks = await self.services.readiness()
        return all(c["ok"] for c in checks if c["name"] == "journal")

    async def _final_sync(self) -> None:
        with contextlib.suppress(GatewayError, TimeoutError):
            async with asyncio.timeout(FINAL_SYNC_TIMEOUT):
                await self.services.sync.sync_once()


async def run_gateway(config: GatewayConfig) -> None:
    gateway = Gateway(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, gateway.request_stop)
    loop.add_signal_handler(signal.SIGHUP, gateway.request_reload)
    await gateway.run()
