"""The mall's business day: what "today" means, the same at every till and at the ledger.

Records keep UTC instants (``created_at``). Every *day* — offset days,
campaign days, coupon validity, "a sale of today" for voids, the day report,
reconciliation, points expiry and the tier year — is derived from an instant
in the mall's one time zone, which the rulebook names (default
``Asia/Shanghai``), never from the host's ``TZ``. A till in a container on
UTC and the ledger in Frankfurt agree on which day 00:30 Beijing time is.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocols.errors import FinalError

DEFAULT_ZONE = "Asia/Shanghai"
CHINA = timezone(timedelta(hours=8), "CST")  # the wallets' fixed China time (no daylight saving since 1991)
# An instant as posgw writes it: UTC, to the second or finer, ``Z`` or ``+00:00``.
INSTANT_PATTERN = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)"


class BusinessDayError(FinalError):
    """A time zone or an instant that cannot be read."""

    code = "business-day"


_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]{0,29}(/[A-Za-z0-9_+-]{1,30}){0,2}")  # Area/Location[/Sub]


@functools.lru_cache(maxsize=16)
def mall_zone(name: str) -> tzinfo:
    """The IANA zone ``name`` (from the system's zone data, else the ``tzdata`` package).

    The name is checked for the shape of an IANA name before it becomes a file
    path: fuzzing found a 100-character name ending in ``OSError`` (name too long).
    """
    if not _ZONE_NAME.fullmatch(name):
        raise BusinessDayError(f"{name[:40]!r} is not an IANA time zone name (such as Asia/Shanghai)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as err:
        raise BusinessDayError(f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai)") from err


def is_zone(name: str) -> bool:
    try:
        mall_zone(name)
    except BusinessDayError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def parse_instant(text: str) -> datetime:
    """A UTC instant as records carry it; anything else is a :class:`BusinessDayError`.

    Cached (datetimes are immutable): the ledger asks for each record's instant several times over.
    """
    if not re.fullmatch(INSTANT_PATTERN, text):
        raise BusinessDayError(f"{text[:40]!r} is not a UTC instant (YYYY-MM-DDTHH:MM:SS[.fff]Z)")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def business_day(instant: str | datetime, zone: str = DEFAULT_ZONE) -> date:
    """The mall's calendar day at ``instant`` (a UTC ISO string or an aware datetime)."""
    if isinstance(instant, str):
        return _day_of(instant, zone)
    return _day_at(instant, zone)


@functools.lru_cache(maxsize=4096)
def _day_of(instant: str, zone: str) -> date:
    return _day_at(parse_instant(instant), zone)


def _day_at(at: datetime, zone: str) -> date:
    if at.tzinfo is None:
        raise BusinessDayError("a naive datetime has no instant; pass an aware one")
    return at.astimezone(mall_zone(zone)).date()


def minute_of_day(instant: datetime, zone: str = DEFAULT_ZONE) -> int:
    """Minutes after the mall's midnight at ``instant`` (promotions limited to hours of the day)."""
    if instant.tzinfo is None:
        raise BusinessDayError("a naive datetime has no instant; pass an aware one")
    local = instant.astimezone(mall_zone(zone))
    return local.hour * 60 + local.minute


def business_year(instant: str, zone: str = DEFAULT_ZONE) -> str:
    """The mall's calendar year at ``instant`` (growth value and tiers are kept by it)."""
    return str(business_day(instant, zone).year)


def day_start(day: date | str, zone: str = DEFAULT_ZONE) -> datetime:
    """The UTC instant the mall's ``day`` begins (its local midnight)."""
    d = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime.combine(d, time(0), mall_zone(zone)).astimezone(UTC)


def day_bounds(day: date | str, zone: str = DEFAULT_ZONE) -> tuple[str, str]:
    """``[start, end)`` of the mall's ``day`` as UTC text that compares with records' ``created_at``.

    Written to the second without a zone suffix: ``"2026-11-23T16:00:00"`` sorts
    before every instant of that second and after every earlier one.
    """
    d = date.fromisoformat(day) if isinstance(day, str) else day
    start, end = day_start(d, zone), day_start(d + timedelta(days=1), zone)
    return start.strftime("%Y-%m-%dT%H:%M:%S"), end.strftime("%Y-%m-%dT%H:%M:%S")
