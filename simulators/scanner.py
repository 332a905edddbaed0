"""A barcode scanner on a real pseudo-terminal.

``plug()`` opens a pty and points ``link`` (a stable path, like a udev
``/dev/serial/by-id/…`` name) at its slave side; the gateway opens ``link``
as a serial port. ``unplug()`` closes the pty, so the open port fails exactly
as a yanked USB cable does (EIO), and ``plug()`` again is the replug.
"""

from __future__ import annotations

import contextlib
import os
import time
import tty
from pathlib import Path


def open_linked_pty(link: Path) -> tuple[int, int]:
    """A raw pty whose slave side ``link`` points at (replaced atomically); (master, slave) fds."""
    master, slave = os.openpty()
    # Raw mode from the start, so nothing echoes back or rewrites CR/LF
    # before the driver has configured the line itself.
    tty.setraw(slave)
    tmp = link.with_name(link.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(os.ttyname(slave))
    tmp.replace(link)
    return master, slave


def close_linked_pty(link: Path, *fds: int | None) -> None:
    """Pull the cable: the stable path gone, the pty's ends closed."""
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    for fd in fds:
        if fd is not None:
            os.close(fd)


class PtyScanner:
    def __init__(self, link: Path, *, suffix: bytes = b"\r\n", prefix: bytes = b"") -> None:
        self.link = Path(link)
        self.suffix = suffix
        self.prefix = prefix
        self._master: int | None = None
        self._slave: int | None = None

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> Path:
        if self._master is not None:
            return self.link
        self._master, self._slave = open_linked_pty(self.link)
        return self.link

    def unplug(self) -> None:
        close_linked_pty(self.link, self._master, self._slave)
        self._master = self._slave = None

    def frame(self, code: str, aim: str | None = None) -> bytes:
        return self.prefix + (aim or "").encode("ascii") + code.encode("ascii") + self.suffix

    def send(self, code: str, *, aim: str | None = None, chunk: int = 0, gap: float = 0.0) -> None:
        """Send one framed code; ``chunk`` > 0 splits it into writes of that size."""
        self.send_raw(self.frame(code, aim), chunk=chunk, gap=gap)

    def send_raw(self, data: bytes, *, chunk: int = 0, gap: float = 0.0) -> None:
        if self._master is None:
            raise RuntimeError("scanner is unplugged")
        step = chunk or len(data)
        for i in range(0, len(data), step):
            view = memoryview(data)[i : i + step]
            while view:
                view = view[os.write(self._master, view) :]
            if gap:
                time.sleep(gap)

    def __enter__(self) -> PtyScanner:
        self.plug()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unplug()
