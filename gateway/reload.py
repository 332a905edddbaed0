"""``SIGHUP``: read the config file again and apply what is safe to change on a running till.

Applied at once: the log level and format, and the journal limits. Anything
else (terminal identity, API address and token, ledger, devices, payments,
MQTT, the state directory, personal-data keys) needs a restart; the daemon
says which in the ``config_reloaded`` log line. A file with problems is
refused and the running configuration stays, every problem logged.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import structlog

from gateway.config import GatewayConfig, load_config
from gateway.ops.logs import configure_logging
from gateway.services import Services
from offline_queue.limits import JournalLimits
from protocols.errors import SchemaError

log = structlog.get_logger("posgw.reload")


def _shape(config: GatewayConfig) -> dict[str, Any]:
    """What of a config needs a restart, in comparable form (devices and providers by name)."""
    journal = config.journal
    return {
        "terminal": config.terminal,
        "api": config.api,
        "ledger": config.ledger,
        "state_dir": config.state_dir,
        "devices": [(d.name, d.driver) for d in config.devices],
        "payments": (config.payments.deadline, [(w, p.name) for w, p in config.payments.providers]),
        "mqtt": config.mqtt,
        "journal.keys": (journal.keys, journal.keys_source),
    }


def reload(services: Services, running: GatewayConfig) -> GatewayConfig:
    """Apply the file's safe changes to ``services``; return the configuration now in force."""
    try:
        new = load_config(Path(running.source))
    except SchemaError as err:
        log.error("config_reload_refused", source=running.source, problems=err.problems)
        return running
    applied = []
    if (new.log_level, new.log_format) != (running.log_level, running.log_format):
        configure_logging(new.log_level, new.log_format)
        applied.append("logging")
    j, old = new.journal, running.journal
    if (j.max_records, j.max_bytes, j.max_pending_age) != (old.max_records, old.max_bytes, old.max_pending_age):
        limits = JournalLimits(j.max_records, j.max_bytes, j.max_pending_age)
        services.sync.limits = services.desk.limits = limits
        applied.append("journal limits")
    before, after = _shape(running), _shape(new)
    needs_restart = [name for name in before if before[name] != after[name]]
    log.info("config_reloaded", source=running.source, applied=applied, needs_restart=needs_restart)
    # What was applied is in force; the rest stays as it was until a restart.
    return dataclasses.replace(
        running,
        log_level=new.log_level,
        log_format=new.log_format,
        journal=dataclasses.replace(
            running.journal, max_records=j.max_records, max_bytes=j.max_bytes, max_pending_age=j.max_pending_age
        ),
    )
