"""What a till installs: the production path (`make till`) brings none of the test-only services."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_ONLY = {"vsmartcard-vpcd", "chromium", "mosquitto", "postgresql"}


def packages_by_path() -> tuple[set[str], set[str]]:
    """(packages any bootstrap installs, packages only the test and demo bootstrap installs)."""
    everywhere: set[str] = set()
    test_only: set[str] = set()
    inside = False
    for line in (ROOT / ".ci" / "bootstrap").read_text().splitlines():
        if line.strip() == "if ! $till; then":
            inside = True
        elif inside and line.strip() == "fi":
            inside = False
        for found in re.findall(r"apt_packages\+=\(([^)]*)\)", line):
            (test_only if inside else everywhere).update(found.split())
    return everywhere, test_only


def test_a_till_gets_pcsc_and_python_but_no_test_service() -> None:
    everywhere, test_only = packages_by_path()
    assert {"pcscd", "libpcsclite-dev"} <= everywhere
    assert test_only >= TEST_ONLY
    assert not (TEST_ONLY & everywhere)


def test_the_operator_guide_installs_a_till_with_make_till() -> None:
    guide = (ROOT / "docs" / "operator-guide.md").read_text()
    assert "sudo make till" in guide
    assert "make bootstrap" not in guide
    assert "till:\n\t@bash .ci/bootstrap --till" in (ROOT / "Makefile").read_text()
