"""PostgreSQL for the ledger's tests: throw-away schemas on the machine's server, and a server of a test's own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from simulators.postgres import fresh_schema
from simulators.processes import free_port

__all__ = ["PrivateServer", "fresh_schema"]


class PrivateServer:
    """A PostgreSQL server of a test's own (``initdb`` in a temporary directory): one it may SIGKILL.

    Runs as the ``postgres`` user when the tests run as root (``initdb`` refuses root).
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="posgw-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bindirs:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql (.ci/bootstrap installs them)")
        self.bin = bindirs[-1]
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            self.as_owner = ["runuser", "-u", "postgres", "--"]
            self.root.chmod(0o755)
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_owner, str(self.bin / tool), *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def kill(self) -> None:
        """SIGKILL the server and every one of its processes, as a power cut would (crash recovery on start)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        children = [
            int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        ]
        for victim in (pid, *children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        for victim in (pid, *children):
            while Path(f"/proc/{victim}").exists():
                time.sleep(0.01)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
