"""Private Mosquitto brokers for tests: accounts, TLS with a CA made on the spot, the shipped ACL."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from pathlib import Path

from simulators.provider_keys import issue, make_ca, pem, write_cert

ACL = Path(__file__).resolve().parent.parent / "config" / "mosquitto" / "posgw.acl"


def start_broker(conf: Path) -> subprocess.Popen[bytes]:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def broker_with_account(tmp_path: Path, port: int, user: str, password: str) -> Path:
    return broker_conf(tmp_path, port, {user: password})


def broker_conf(
    tmp_path: Path, port: int, accounts: dict[str, str], *, tls: Path | None = None, acl: bool = False
) -> Path:
    """A broker refusing anonymous clients; ``tls``: a folder from :func:`make_tls`; ``acl``: the shipped ACL."""
    passwords = tmp_path / "passwords"
    for n, (user, password) in enumerate(accounts.items()):
        create = ["-c"] if n == 0 else []
        subprocess.run(["mosquitto_passwd", "-b", *create, str(passwords), user, password], check=True)
    # As root, mosquitto would switch to its own user, who cannot read pytest's private temp folder.
    lines = ["user root"] if os.geteuid() == 0 else []
    lines += [f"listener {port} 127.0.0.1", "allow_anonymous false", f"password_file {passwords}", "persistence false"]
    if tls is not None:
        lines += [f"cafile {tls / 'ca.pem'}", f"certfile {tls / 'server.pem'}", f"keyfile {tls / 'server.key'}"]
    if acl:
        lines.append(f"acl_file {ACL}")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def make_tls(folder: Path) -> Path:
    """A CA (``ca.pem``) and a certificate it signed for 127.0.0.1 (``server.pem``, ``server.key``)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca = make_ca(now)
    server_key, server = issue(ca, "127.0.0.1", now, server=True)
    write_cert(folder / "ca.pem", ca[1])
    write_cert(folder / "server.pem", server)
    (folder / "server.key").write_bytes(pem(server_key))
    return folder
