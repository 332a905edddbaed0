"""Structured logs: JSON lines for machines, readable lines on a terminal.

Every event passes :func:`protocols.masking.mask_processor` before it is
rendered, so no card number, phone number, token or secret is ever written.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from gateway.ops.log_limit import BudgetFilter, LogBudget, SafeStream
from protocols.masking import mask_processor

BUDGET = LogBudget()  # every event kind: 20 lines per 10 s, the rest counted (gateway/ops/log_limit.py)


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    stream = SafeStream(sys.stderr)
    structlog.configure(
        processors=[
            BUDGET.processor,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # The standard library's loggers (asyncio, aiohttp) under the same budget, through the same safe stream.
    handler = logging.StreamHandler(stream)
    handler.addFilter(BudgetFilter(BUDGET))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
