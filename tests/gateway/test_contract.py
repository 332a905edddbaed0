"""The contract at the door: what is not a body of ours is a 400 or a 422 with every problem, never a 500."""

from __future__ import annotations

import pytest

from gateway.api import contract
from gateway.errors import BadRequestError
from protocols.errors import SchemaError


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"sku": "A", "name": "\\ud800", "unit_price": 1}', "not valid JSON"),  # a lone surrogate
        (b'{"sku": ' + b"[" * 20_000 + b"]" * 20_000 + b', "unit_price": 1}', "nested (too deep|more than 32 deep)"),
        (b"[" * 20_000, "nested (too deep|more than 32 deep)"),
    ],
)
def test_what_is_not_a_body_is_refused_with_a_reason(raw: bytes, why: str) -> None:
    with pytest.raises(BadRequestError, match=why):
        contract.read(raw, contract.NewLine, "line")


def test_every_problem_of_a_body_is_told_at_once_in_field_order() -> None:
    raw = b'{"sku": "", "unit_price": -5, "quantity": "2", "colour": "red"}'
    with pytest.raises(SchemaError) as refused:
        contract.read(raw, contract.NewLine, "line")
    assert [p.split(":")[0] for p in refused.value.problems] == ["sku", "unit_price", "quantity", "colour"]
    assert refused.value.problems[2] == "quantity: expected int, got str '2'"  # strict: no coercion of "2"


def test_problems_inside_a_list_name_their_item() -> None:
    raw = b'{"tenders": [{"kind": "cash", "amount": 1}, {"kind": "card", "amount": -1}]}'
    with pytest.raises(SchemaError) as refused:
        contract.read(raw, contract.Completion, "completion")
    assert refused.value.problems == [
        "tenders[1].kind: invalid enum value 'card'",
        "tenders[1].amount: expected int >= 0, got -1",
    ]


def test_a_good_body_is_its_model() -> None:
    line = contract.read(b'{"sku": "6901234567892", "unit_price": 100}', contract.NewLine, "line")
    assert (line.quantity, line.category) == (1, "general")
    assert contract.read(b"", contract.Completion, "completion").tenders == []  # no body: the defaults
