"""Helpers for tests that go through the real pcscd and its vpcd virtual readers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from smartcard import scard

READER_0 = "Virtual PCD 00 00"  # vpcd's first reader listens on 127.0.0.1:35963 (only: .ci/pcscd)
READER_1 = "Virtual PCD 00 01"  # and its second on 35964
PORT_0, PORT_1 = 35963, 35964


LOCK = Path("/tmp/posgw-tests-pcscd.lock")


@contextlib.contextmanager
def one_at_a_time() -> Iterator[None]:
    """The machine has one pcscd and one pair of virtual readers: a test using them holds this lock (across
    pytest-xdist workers, and other test runs), so no card of another test is ever in its reader."""
    with LOCK.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def vpcd_listeners(port: int = PORT_0) -> list[str]:
    """The local addresses (hex, as the kernel writes them) listening on ``port``: read from the kernel's
    socket tables, as connecting would count as inserting a card."""
    found: list[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if Path(table).exists():
            for line in Path(table).read_text().splitlines()[1:]:
                local, _, state = line.split()[1:4]
                address, _, hex_port = local.rpartition(":")
                if int(hex_port, 16) == port and state == "0A":
                    found.append(address)
    return found


def vpcd_listening(port: int = PORT_0) -> bool:
    """vpcd listens on 127.0.0.1 (``.ci/pcscd`` starts it so: never on the network)."""
    return "0100007F" in vpcd_listeners(port)


def _as_root(*argv: str) -> None:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*prefix, *argv], check=False, capture_output=True)


def wait_for(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


PID_FILE = Path("/run/pcscd/pcscd.pid")  # pcscd writes its pid here; the tests stop that one by its pid


def pcscd_pid() -> int | None:
    """The pid of the pcscd the test session runs (``.ci/services`` or :func:`start_pcscd` started it)."""
    try:
        pid = int(PID_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    comm = Path(f"/proc/{pid}/comm")
    return pid if comm.exists() and comm.read_text().strip() == "pcscd" else None


def stop_pcscd() -> None:
    """Stop the session's pcscd, by its pid (never every pcscd on the host by name)."""
    pid = pcscd_pid()
    assert pid is not None, f"no running pcscd named in {PID_FILE}"
    _as_root("kill", "-TERM", str(pid))
    wait_for(lambda: not Path(f"/proc/{pid}").exists() and not vpcd_listening(), 10, "pcscd did not stop")


def start_pcscd() -> None:
    subprocess.run([str(Path(__file__).resolve().parents[1] / ".ci" / "pcscd")], check=True, capture_output=True)
    wait_for(vpcd_listening, 10, "pcscd did not start its vpcd reader")
    wait_for(lambda: pcscd_pid() is not None, 10, f"pcscd did not write {PID_FILE}")


def wait_readers_empty(within: float = 10.0) -> None:
    """Block until pcscd has noticed that no card is left in either virtual reader.

    A card removed and another inserted before pcscd's next poll look like
    one card that never left; tests wait for the removal to register first.
    """
    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        return
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            hr, states = scard.SCardGetStatusChange(ctx, 0, [(READER_0, 0), (READER_1, 0)])
            if hr == scard.SCARD_S_SUCCESS and not any(st & scard.SCARD_STATE_PRESENT for _, st, _ in states):
                return
            time.sleep(0.05)
        raise TimeoutError("a virtual card is still present in a reader")
    finally:
        scard.SCardReleaseContext(ctx)


def require_pcscd() -> None:
    """Fail (never skip) when the PC/SC stack is missing: CI must not hide it."""
    if not vpcd_listening():
        pytest.fail(
            "pcscd with the vsmartcard-vpcd reader is not running on 127.0.0.1:35963; "
            "`make test` starts it (.ci/services)"
        )
