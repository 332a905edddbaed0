"""Read untrusted documents (TOML config, JSON bodies) into typed values.

A :class:`Fields` walks one mapping and records *every* problem it meets,
with the dotted path of the key and what was expected, instead of stopping at
the first. The caller reads all the fields it needs, then calls
:meth:`Problems.raise_if_any`. On a problem the getters return a harmless
placeholder so reading can go on.
"""

from __future__ import annotations

import functools
import math
import posixpath
import re
from collections.abc import Mapping
from typing import Final

from protocols.errors import SchemaError


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class Problems:
    """The problems found in one document."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)

    def raise_if_any(self) -> None:
        if self.items:
            raise SchemaError(self.source, self.items)


def _type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


@functools.lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


class Fields:
    """Typed getters over one mapping; unknown keys are reported by :meth:`done`."""

    def __init__(self, data: object, problems: Problems, path: str = "", base_dir: str = "") -> None:
        self.problems = problems
        self.path = path
        self.base_dir = base_dir
        self._seen: set[str] = set()
        if isinstance(data, Mapping):
            self._data: Mapping[str, object] = data
        else:
            problems.add(path, f"expected a table/object, got {_type_name(data)}")
            self._data = {}

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, default: object, expected: str) -> object:
        self._seen.add(key)
        if key in self._data:
            return self._data[key]
        if default is MISSING:
            self.problems.add(self._key(key), f"is required ({expected})")
        return default

    def has(self, key: str) -> bool:
        return key in self._data

    def text(
        self,
        key: str,
        default: str | _Missing = MISSING,
        *,
        max_len: int = 4096,
        pattern: str | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> str:
        value = self._data.get(key, MISSING)
        if type(value) is str and len(value) <= max_len and choices is None:  # the common case, quickly
            self._seen.add(key)
            if pattern is None or _pattern(pattern).fullmatch(value):
                return value
            self.problems.add(self._key(key), f"{value!r} does not match {pattern}")
            return value
        value = self._get(key, default, "a string")
        if isinstance(value, _Missing):
            return ""
        if not isinstance(value, str):
            self.problems.add(self._key(key), f"expected a string, got {_type_name(value)}")
            return ""
        if len(value) > max_len:
            self.problems.add(self._key(key), f"longer than {max_len} characters")
        elif choices is not None and value not in choices:
            self.problems.add(self._key(key), f"expected one of {', '.join(choices)}; got {value!r}")
        elif pattern is not None and not _pattern(pattern).fullmatch(value):
            self.problems.add(self._key(key), f"{value!r} does not match {pattern}")
        return value

    def optional_text(self, key: str, *, max_len: int = 4096, pattern: str | None = None) -> str | None:
        """A string that may be absent or null."""
        if self._data.get(key) is None:
            self._seen.add(key)
            return None
        return self.text(key, max_len=max_len, pattern=pattern)

    def file_path(self, key: str, default: str | _Missing = MISSING) -> str:
        """A file name; a relative one is taken relative to the document's folder."""
        value = self.text(key, default)
        if value and self.base_dir and "://" not in value and not value.startswith("/"):
            return posixpath.normpath(f"{self.base_dir}/{value}")
        return value

    def integer(
        self,
        key: str,
        default: int | _Missing = MISSING,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        value = self._data.get(key, MISSING)
        if (
            type(value) is int  # not a bool, not a float: the common case, quickly
            and (minimum is None or value >= minimum)
            and (maximum is None or value <= maximum)
        ):
            self._seen.add(key)
            return value
        value = self._get(key, default, "an integer")
        if isinstance(value, _Missing):
            return 0
        # JSON has one number type: 25.0 is the integer 25 (exactly, below 2**53); 25.5 is not.
        if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.problems.add(self._key(key), f"expected an integer, got {_type_name(value)}")
            return 0
        if minimum is not None and value < minimum:
            self.problems.add(self._key(key), f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            self.problems.add(self._key(key), f"must be at most {maximum}, got {value}")
        return value

    def optional_integer(self, key: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        """An integer that may be absent or null."""
        if self._data.get(key) is None:
            self._seen.add(key)
            return None
        return self.integer(key, minimum=minimum, maximum=maximum)

    def number(
        self,
        key: str,
        default: float | _Missing = MISSING,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        """A non-money quantity such as seconds; money is always :meth:`integer`."""
        value = self._get(key, default, "a number")
        if isinstance(value, _Missing):
            return 0.0
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.problems.add(self._key(key), f"expected a number, got {_type_name(value)}")
            return 0.0
        # NaN compares false with every bound (it would pass them all); a huge integer cannot become a float.
        if (isinstance(value, int) and abs(value) > 2**53) or (isinstance(value, float) and not math.isfinite(value)):
            self.problems.add(self._key(key), f"{str(value)[:24]} is not a number posgw accepts here")
            return 0.0
        if minimum is not None and value < minimum:
            self.problems.add(self._key(key), f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            self.problems.add(self._key(key), f"must be at most {maximum}, got {value}")
        return float(value)

    def flag(self, key: str, default: bool | _Missing = MISSING) -> bool:
        value = self._get(key, default, "true or false")
        if isinstance(value, _Missing):
            return False
        if not isinstance(value, bool):
            self.problems.add(self._key(key), f"expected true or false, got {_type_name(value)}")
            return False
        return value

    def table(self, key: str, *, required: bool = False) -> Fields:
        value = self._get(key, MISSING if required else {}, "a table")
        return Fields({} if isinstance(value, _Missing) else value, self.problems, self._key(key), self.base_dir)

    def optional_table(self, key: str) -> Fields | None:
        """A table that may be absent or null."""
        if self._data.get(key) is None:
            self._seen.add(key)
            return None
        return self.table(key)

    def tables(self, key: str, *, max_items: int = 1000, required: bool = False) -> list[Fields]:
        value = self._get(key, MISSING if required else [], "a list of tables")
        if isinstance(value, _Missing):
            return []
        if not isinstance(value, list):
            self.problems.add(self._key(key), f"expected a list of tables, got {_type_name(value)}")
            return []
        if len(value) > max_items:
            self.problems.add(self._key(key), f"more than {max_items} items")
            return []
        return [Fields(item, self.problems, f"{self._key(key)}[{i}]", self.base_dir) for i, item in enumerate(value)]

    def items(self, key: str, *, max_items: int = 1000) -> list[object]:
        """A list whose items the caller reads one by one (each with its own problems, when one bad
        item must not spoil the rest)."""
        value = self._get(key, [], "a list")
        if not isinstance(value, list):
            self.problems.add(self._key(key), f"expected a list, got {_type_name(value)}")
            return []
        if len(value) > max_items:
            self.problems.add(self._key(key), f"more than {max_items} items")
            return []
        return value

    def integer_list(self, key: str, *, minimum: int, maximum: int) -> list[int]:
        value = self._get(key, [], "a list of integers")
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            self.problems.add(self._key(key), "expected a list of integers")
            return []
        if any(not minimum <= v <= maximum for v in value):
            self.problems.add(self._key(key), f"every value must be {minimum}..{maximum}")
        return list(value)

    def texts(self, key: str, default: list[str] | None = None) -> list[str]:
        value = self._get(key, [] if default is None else default, "a list of strings")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problems.add(self._key(key), "expected a list of strings")
            return []
        return list(value)

    def int_map(self, key: str, *, minimum: int = 0, maximum: int | None = None) -> dict[str, int]:
        """A table of string keys to integers, such as merchant → rate."""
        sub = self.table(key)
        return {k: sub.integer(k, minimum=minimum, maximum=maximum) for k in sub.names()}

    def names(self) -> list[str]:
        return [str(k) for k in self._data]

    def done(self) -> None:
        """Report keys present in the document that nobody read (likely typos)."""
        for key in self._data:
            if key not in self._seen:
                self.problems.add(self._key(str(key)), "unknown key")
