"""One reader for JSON that comes from outside: a request, an answer, a broker, a file, a scanned code. Sans I/O.

Python's ``json`` accepts what posgw must not: nesting deep enough to end in
``RecursionError`` later (in canonicalisation, in a walk), lone UTF-16
surrogates that can never be encoded again (so a record holding one can never
be hashed or signed), ``NaN`` and ``Infinity``, integers of any length
(``float()`` of a 309-digit one raises ``OverflowError``), and an object that
gives a key twice (readers disagree on which counts: the API's typed decoder
judged the first, json kept the last). :func:`read_json` refuses each with an
:class:`UntrustedJsonError` (under the one exception root) that names the
source, so everything it accepts can be canonicalised, hashed and compared.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from protocols.errors import ProtocolError

MAX_DEPTH = 32  # arrays and objects inside each other; posgw's deepest document needs 6
MAX_INT_DIGITS = 19  # every integer posgw reads fits in 64 bits
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')  # deleted: what cannot open or close
_PAIR = re.compile(rb"\[\]|\{\}")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class UntrustedJsonError(ProtocolError):
    """JSON from outside that posgw refuses to read: too large, too deep, not UTF-8, a lone surrogate,
    a non-finite or over-long number, or not JSON at all."""

    code = "bad-json"


def read_json(data: bytes | str, what: str, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` (UTF-8 bytes, or text) as JSON from ``what``, within the limits; or refuse it."""
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as err:
            raise UntrustedJsonError(f"{what} holds a lone surrogate (not Unicode text)") from err
    else:
        raw = data
    if len(raw) > max_bytes:
        raise UntrustedJsonError(f"{what} is {len(raw):,} bytes, more than {max_bytes:,}")
    try:
        text = raw.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as err:
        raise UntrustedJsonError(f"{what} is not UTF-8 (byte {err.start})") from err
    _check_depth(raw, what, max_depth)
    try:
        value = json.loads(
            text, parse_constant=_constant, parse_int=_integer, parse_float=_float, object_pairs_hook=_object
        )
    except _RefusedError as err:
        raise UntrustedJsonError(f"{what}: {err}") from err
    except (ValueError, RecursionError) as err:
        raise UntrustedJsonError(f"{what} is not JSON: {str(err)[:120]}") from err
    if _SURROGATE_ESCAPE.search(text):  # pairs are fine (an emoji); a lone one never encodes again
        _check_strings(value, what)
    return value


class _RefusedError(ValueError):
    pass


def _constant(name: str) -> Any:
    raise _RefusedError(f"{name} is not a number posgw accepts")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object; a key given twice is refused (readers disagree on which one counts)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise _RefusedError(f"the key {twice[:40]!r} is given twice")
    return value


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _RefusedError(f"an integer of {len(digits.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(digits)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _RefusedError(f"{text[:24]} is out of range")
    return value


def _check_depth(raw: bytes, what: str, max_depth: int) -> None:
    """Nesting measured on the brackets outside strings, before the parser could recurse on them.

    Every step is one C pass over bytes (a batch of records is 200 KB). Escaped backslashes, then escaped
    quotes, go first (JSON pairs escapes from the left, as ``replace`` does); then everything but quotes
    and brackets. Two adjacent quotes go next (whether they close one string and open another or hold an
    empty one, the brackets after them stay inside or outside as they were); what is between the quotes
    left is inside a string. Innermost pairs are then taken away a pass at a time, so a document nested
    ``d`` deep is empty after ``d`` passes; what is left once pairs stop forming (brackets never closed)
    is measured bracket by bracket, the passes added. Only ASCII bytes are looked at: no byte of a
    multi-byte UTF-8 character is one of them.
    """
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = raw.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in brackets:
        brackets = b"".join(brackets.split(b'"')[::2])
    passes = 0
    while brackets and passes < max_depth:
        inner = _PAIR.sub(b"", brackets)
        if inner == brackets:
            break
        brackets, passes = inner, passes + 1
    depth = deepest = 0
    for bracket in brackets:
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    if deepest + passes > max_depth:
        raise UntrustedJsonError(f"{what} is nested more than {max_depth} deep")


def _check_strings(value: Any, what: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            items = [item]
        elif isinstance(item, dict):
            items = list(item)
            stack.extend(item.values())
        else:
            if isinstance(item, list):
                stack.extend(item)
            continue
        for text in items:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise UntrustedJsonError(f"{what} holds a lone surrogate (\\u{ord(text[err.start]):04x})") from err
