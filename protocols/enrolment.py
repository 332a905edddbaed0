"""Enrolment, as a till and the ledger both see it: the one-time code and the proof of the key.

An operator's code reads ``PE1-`` and 24 base32 letters in groups of four
(120 random bits). The till proves it holds the journal key it enrols by
signing :func:`proof_message` with it; the ledger checks that signature with
the key offered before binding the key to the terminal.
"""

from __future__ import annotations

CODE_PATTERN = r"PE1-[A-Z2-7]{4}(-[A-Z2-7]{4}){5}"


def normalise_code(code: str) -> str:
    return code.strip().upper()


def proof_message(terminal_id: str, code: str, public_key: str) -> bytes:
    """What an enrolling till signs with its journal key: possession of the key, for this code."""
    return f"posgw-enrol-v1\n{terminal_id}\n{normalise_code(code)}\n{public_key}".encode()
