"""The till's side of staff: a signed list believed only from the pinned key and never older; PIN guessing
locked per id and till-wide, with alerts; approvals only by supervisors; records stamped with who and which
shift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import ApprovalRequiredError, CashierRequiredError, PinLockedError, PinRefusedError
from gateway.events import Alert, Event, EventHub
from gateway.staff.desk import TILL_WIDE, Approval, CashierDesk
from gateway.staff.roster import Roster
from protocols.staff import Policy, StaffEntry, StaffListRefusedError, hash_pin, sign_staff, staff_to_wire, verify_pin

KEY = Ed25519PrivateKey.generate()
PINS = {"C1": "1234", "C2": "2345", "SUP": "9999"}
# Cheap hashes for the tests (2**10); the ledger makes 2**14.
STAFF = [
    StaffEntry(s, f"name {s}", "supervisor" if s == "SUP" else "cashier", hash_pin(pin, log_n=10))
    for s, pin in PINS.items()
]


def signed(version: int, staff: list[StaffEntry] = STAFF, policy: Policy | None = None) -> dict[str, object]:
    return sign_staff(staff_to_wire(version, staff, policy or Policy(max_tries=3, lockout_seconds=60)), KEY)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def roster(tmp_path: Path) -> Roster:
    roster = Roster(tmp_path / "staff.json", KEY.public_key)
    roster.accept(signed(2))
    return roster


def alerts(hub: EventHub) -> list[Event]:
    seen: list[Event] = []
    hub.listeners.append(seen.append)
    return seen


def test_pins_are_slow_salted_hashes_never_the_pin() -> None:
    one, two = hash_pin("1234"), hash_pin("1234")
    assert one != two  # salted
    assert "1234" not in one
    assert verify_pin(one, "1234")
    assert not verify_pin(one, "1235")
    assert not verify_pin("scrypt$30$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, "1234")  # a cost past the bound
    with pytest.raises(ValueError, match="4 to 8 digits"):
        hash_pin("12ab")


def test_a_list_is_believed_only_from_the_pinned_key_and_never_older(roster: Roster, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(StaffListRefusedError, match="not the ledger key"):
        roster.accept(sign_staff(staff_to_wire(9, STAFF, Policy()), other))
    with pytest.raises(StaffListRefusedError, match="older than v2"):
        roster.accept(signed(1))
    envelope = signed(3)
    envelope["staff"]["staff"][0]["role"] = "supervisor"  # type: ignore[index]  # promoted after signing
    with pytest.raises(StaffListRefusedError, match="signature"):
        roster.accept(envelope)
    assert roster.version == 2
    roster.save()
    again = Roster(tmp_path / "staff.json", KEY.public_key)
    assert again.load()
    assert again.get("C1") == roster.get("C1")
    body = json.loads((tmp_path / "staff.json").read_text())
    body["staff"]["policy"]["max_tries"] = 100  # edited on disk
    (tmp_path / "staff.json").write_text(json.dumps(body))
    edited = Roster(tmp_path / "staff.json", KEY.public_key)
    assert not edited.load()
    assert not edited.required


async def test_wrong_pins_lock_the_id_then_the_till_with_an_alert(roster: Roster) -> None:
    hub, clock = EventHub(), Clock()
    seen = alerts(hub)
    desk = CashierDesk(roster, hub, clock)
    for left in ("2 tries", "1 try"):
        with pytest.raises(PinRefusedError, match=left):
            await desk.sign_in("C1", "0000")
    with pytest.raises(PinLockedError) as locked:
        await desk.sign_in("C1", "0000")
    assert locked.value.retry_after == 60
    with pytest.raises(PinLockedError):
        await desk.sign_in("C1", "1234")  # the right PIN waits out the lock too
    assert [e.code for e in seen if isinstance(e, Alert)] == ["pin-locked"]
    clock.now += 61
    assert (await desk.sign_in("C1", "1234")).staff_id == "C1"
    # Walking the ids: every id gets fewer than max_tries, yet the till's PIN entry locks as a whole.
    for i in range(TILL_WIDE * 3):  # the three wrong PINs for C1 fell out of the window (61 s ago)
        with pytest.raises((PinRefusedError, PinLockedError)):
            await desk.check_pin(f"X{i}", "0000")
    with pytest.raises(PinLockedError, match="this till's PIN entry"):
        await desk.check_pin("C2", "2345")
    assert [e.code for e in seen if isinstance(e, Alert)] == ["pin-locked", "pin-locked"]


async def test_approvals_come_from_supervisors_and_the_policy(roster: Roster) -> None:
    desk = CashierDesk(roster, EventHub())
    with pytest.raises(CashierRequiredError):
        await desk.approve("void", 100, None)
    await desk.sign_in("C1", "1234")
    with pytest.raises(ApprovalRequiredError, match="needs a supervisor"):
        await desk.approve("void", 100, None)
    with pytest.raises(ApprovalRequiredError, match="C2 is not a supervisor"):
        await desk.approve("void", 100, Approval("C2", "2345"))
    assert await desk.approve("void", 100, Approval("SUP", "9999")) == "SUP"
    assert await desk.approve("refund", 500_00, None) is None  # not above ¥500
    with pytest.raises(ApprovalRequiredError):
        await desk.approve("refund", 500_01, None)
    desk.sign_out()
    await desk.sign_in("SUP", "9999")
    assert await desk.approve("no_sale", 0, None) == "SUP"  # a supervisor approves their own


async def test_a_new_list_without_the_cashier_signs_them_out(roster: Roster) -> None:
    desk = CashierDesk(roster, EventHub())
    await desk.sign_in("C2", "2345")
    assert desk.who() == "C2"
    roster.accept(signed(3, [s for s in STAFF if s.staff_id != "C2"]))
    with pytest.raises(CashierRequiredError):
        desk.who()
    assert desk.cashier is None


def test_no_staff_list_no_cashier_asked(tmp_path: Path) -> None:
    desk = CashierDesk(Roster(tmp_path / "none.json", KEY.public_key), EventHub())
    assert desk.who() is None
    assert not desk.required
