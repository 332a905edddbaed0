"""Typed events: their wire form, and metrics counted by type."""

from __future__ import annotations

from gateway.events import (
    EVENT_TYPES,
    Alert,
    BasketChanged,
    CardRead,
    EventHub,
    LedgerStatus,
    MemberSeen,
    PaymentStep,
    Refusal,
    ScanSeen,
)
from gateway.ops.metrics import Metrics


def test_a_field_said_only_when_set_is_left_out_and_the_rest_always_sent() -> None:
    product = ScanSeen(
        device="s", kind="product", data="6901234567892", detail="EAN-13", symbology=None, problem=None, scanned_at=1.0
    ).to_wire()
    assert product["type"] == "scan"
    assert {"data", "symbology", "problem", "basket_id"} <= product.keys()  # always sent, null or not
    assert "member" not in product
    assert "member_error" not in product
    refused = CardRead(
        device="r", reader="R1", kind="inserted", pcsc_ms=1.5, read_at=2.0, card_error=Refusal(code="x", message="y")
    ).to_wire()
    assert refused["card_error"] == {"code": "x", "message": "y"}
    assert "member" not in refused
    member = MemberSeen(member_id="M1", tier="gold", via="card", weak=False)
    seen = CardRead(device="r", reader="R1", kind="inserted", pcsc_ms=1.5, read_at=2.0, member=member, basket_id="B")
    assert seen.to_wire()["member"] == {"member_id": "M1", "tier": "gold", "via": "card", "weak": False}
    changed = BasketChanged(basket_id="B", lines=2).to_wire()
    assert set(changed) == {"type", "at", "basket_id", "lines"}


def test_every_event_type_has_a_wire_name() -> None:
    names = {t.type for t in EVENT_TYPES}
    assert {"scan", "card", "basket", "payment", "sale", "refund", "sync", "journal", "alert", "overflow"} <= names


def test_metrics_count_events_by_their_type() -> None:
    hub, metrics = EventHub(), Metrics()
    hub.listeners.append(metrics.observe)
    hub.publish(BasketChanged(basket_id="B", state="open"))
    hub.publish(BasketChanged(basket_id="B", lines=1))  # a change, not a new basket
    hub.publish(PaymentStep(basket_id="B", payment_id="P", wallet="wechat", amount=1, step="pay", answer="success"))
    hub.publish(PaymentStep(basket_id="B", payment_id="P", wallet="wechat", amount=1, outcome="paid", message="paid"))
    hub.publish(LedgerStatus(online=False, error="refused"))
    hub.publish(Alert(code="journal-limit", message="full"))
    text = metrics.render().decode()
    assert "posgw_baskets_total 1.0" in text
    assert 'posgw_payments_total{outcome="paid",wallet="wechat"} 1.0' in text
    assert "posgw_ledger_lost_total 1.0" in text
    assert "posgw_ledger_online 0.0" in text
    assert 'posgw_alerts_total{code="journal-limit"} 1.0' in text
