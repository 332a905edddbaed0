"""One harness per entry point that takes bytes from outside: a device, a scanned string, a token, JSON.

Each harness takes raw bytes and asks of the entry point what posgw promises:
only the project's typed errors (the one root, ``GatewayError``) escape;
what is accepted round-trips where the code promises it (JSON, records,
APDUs, ECR messages); incremental decoders give the same result however the
input is chunked. Anything else is a :class:`Finding`. The same harnesses
run under hypothesis in ``make test`` (``tests/fuzz``) and under atheris in
``make fuzz`` (``bench/fuzz.py``); :func:`mutate` makes the structural
mutations both feed them, from valid samples (:data:`TARGETS` seeds).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.api import contract
from protocols import (
    alipay,
    apdu,
    codes,
    ecr,
    framing,
    member_card,
    micropay,
    mqtt_topics,
    phone,
    tlv,
    tokens,
    wechatpay,
)
from protocols import refund as refund_machine
from protocols.chain import canonical_json
from protocols.errors import GatewayError
from protocols.records import TransactionRecord
from protocols.revocations import open_revocations, revocations_to_wire
from protocols.rulebook import Rulebook, members_from_wire, seal_document
from protocols.statements import WECHAT_HEADER, read_statement
from protocols.sync import batch_from_wire, seal_items
from protocols.untrusted_json import read_json

KEY = Ed25519PrivateKey.generate()  # the harnesses play the ledger where a parser sits behind a signature
PUBLIC = KEY.public_key()
KEYS = {tokens.key_id(PUBLIC): PUBLIC}
HANG_SECONDS = 1.0  # one call spending more CPU than this is a hang (waiting for a busy machine is not)
ALIPAY_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # playing Alipay


class Finding(Exception):  # noqa: N818 - what a fuzzer finds, not an error of the code under test
    """Something posgw promised that did not hold: ``kind`` is untyped, round-trip, chunking or hang."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


@dataclass(frozen=True)
class Target:
    name: str
    harness: Callable[[bytes], None]
    seeds: list[bytes] = field(default_factory=list)


def run(target: Target, data: bytes) -> None:
    """One input through a harness: a typed refusal is fine; anything else unexpected is a :class:`Finding`."""
    started = time.process_time()
    try:
        target.harness(data)
    except Finding:
        raise
    except GatewayError:
        pass
    except Exception as err:
        raise Finding("untyped", f"{type(err).__name__}: {str(err)[:200]}") from err
    if (spent := time.process_time() - started) > HANG_SECONDS:
        raise Finding("hang", f"{spent:.1f} s of CPU on {len(data)} bytes")


def _same(kind: str, a: object, b: object) -> None:
    if a != b:
        raise Finding(kind, f"{str(a)[:120]} != {str(b)[:120]}")


def _cuts(data: bytes) -> list[bytes]:
    """``data`` cut into pieces by its own first byte (so the cut is part of the input the fuzzer mutates)."""
    if not data:
        return [b""]
    step, rest = data[0] % 7 + 1, data[1:]
    return [rest[i : i + step] for i in range(0, len(rest), step)] or [b""]


# -- the harnesses ---------------------------------------------------------------------------------------------


def untrusted_json(data: bytes) -> None:
    value = read_json(data, "fuzz", max_bytes=1 << 20)
    again = read_json(canonical_json(value), "fuzz again", max_bytes=1 << 21)  # canonical form cannot fail
    _same("round-trip", again, value)


def mqtt_payloads(data: bytes) -> None:
    for reader in (mqtt_topics.version_notice, mqtt_topics.command):
        with contextlib.suppress(GatewayError):
            reader(data)


def token(data: bytes) -> None:
    text = data.decode("latin-1")
    for prefix in ("PM1.", "PW1.", "CP1."):
        with contextlib.suppress(GatewayError):
            tokens.verify_token(text, prefix, KEYS, now=1_800_000_000, leeway=30)


def command_apdu(data: bytes) -> None:
    decoded = apdu.CommandApdu.decode(data)
    _same("round-trip", apdu.CommandApdu.decode(decoded.encode()), decoded)


def response_apdu(data: bytes) -> None:
    decoded = apdu.ResponseApdu.decode(data)
    _same("round-trip", decoded.encode(), data)


def tlv_items(data: bytes) -> None:
    for item in tlv.decode(data):
        tlv.find([item], item.tag)


def card_record(data: bytes) -> None:
    member_card.MemberCardRecord.decode(data)


def scanner_frames(data: bytes) -> None:
    pieces = _cuts(data)
    whole = b"".join(pieces)
    for options in ({}, {"prefix": b"\x02", "aim": True, "max_length": 16}):
        one = framing.ScannerFramer(**options)  # type: ignore[arg-type]
        many = framing.ScannerFramer(**options)  # type: ignore[arg-type]
        chunked = [out for piece in pieces for out in many.feed(piece)] + many.flush()
        _same("chunking", chunked, one.feed(whole) + one.flush())


def ecr_frames(data: bytes) -> None:
    pieces = _cuts(data)
    whole = b"".join(pieces)
    one, many = ecr.EcrDecoder(), ecr.EcrDecoder()
    _same("chunking", [out for piece in pieces for out in many.feed(piece)], one.feed(whole))


def ecr_message(data: bytes) -> None:
    message = ecr.EcrMessage.decode(data)
    _same("round-trip", ecr.EcrMessage.decode(message.encode()), message)


def scanned_code(data: bytes) -> None:
    codes.classify(data.decode("latin-1"))


def phone_number(data: bytes) -> None:
    phone.normalise_phone(data.decode("utf-8", "replace"))


def record(data: bytes) -> None:
    parsed = TransactionRecord.from_wire(read_json(data, "fuzz", max_bytes=1 << 20))
    canonical_json(parsed.to_wire())  # a record accepted can always be hashed and signed
    _same("round-trip", TransactionRecord.from_wire(parsed.to_wire()), parsed)


def sync_batch(data: bytes) -> None:
    value = read_json(data, "fuzz", max_bytes=1 << 20)
    _, items = seal_items(value)
    _, records = batch_from_wire(value)
    if items is None or len(items) != len(records):  # the two readers of a batch must agree
        raise Finding("disagreement", f"seal_items read {items and len(items)}, the schema {len(records)}")


def rulebook(data: bytes) -> None:
    book = Rulebook.from_wire(read_json(data, "fuzz", max_bytes=1 << 20))
    _same("round-trip", Rulebook.from_wire(book.to_wire()), book)


def member_list(data: bytes) -> None:
    members_from_wire(read_json(data, "fuzz", max_bytes=1 << 20))


def revocations(data: bytes) -> None:
    value = read_json(data, "fuzz", max_bytes=1 << 20)
    if isinstance(value, dict):  # what the ledger would sign: the parser behind the signature
        open_revocations(seal_document("revocations", value, KEY), PUBLIC)


def payment_machines(data: bytes) -> None:
    """The micropay and refund state machines driven by a provider's answers in any order and timing: only
    typed errors, and a payment that ended never starts again unless it is unwound."""
    answers = list(micropay.Answer)
    flow, refund = micropay.MicropayFlow(0.0, deadline=30.0), refund_machine.RefundFlow(0.0)
    now = 0.0
    for byte in data:
        now += (byte >> 4) * 1.5
        answer = answers[byte % len(answers)]
        event = (byte >> 2) % 6
        ended = flow.outcome is not micropay.Outcome.PENDING
        with contextlib.suppress(GatewayError):
            if event == 0:
                flow.on_pay(answer, now)
            elif event == 1:
                flow.on_query(answer, now)
            elif event == 2:
                flow.on_reverse(answer, now)
            elif event == 3:
                flow.unwind(now)
                ended = False
            elif event == 4:
                flow.on_restart(now)
            else:
                refund.on_refund(answer, now)
        if ended and flow.outcome is micropay.Outcome.PENDING:
            raise Finding("round-trip", f"an ended payment went back to pending after {flow.history[-3:]}")
        if flow.outcome is not micropay.Outcome.PENDING and flow.next_action().step is not micropay.Step.DONE:
            raise Finding("round-trip", f"an ended payment still asks for {flow.next_action()}")


def wechatpay_answers(data: bytes) -> None:
    """A WeChat Pay answer: a flat XML document or a typed refusal; mapped onto the flow without surprises."""
    fields = wechatpay.from_xml(data)
    with contextlib.suppress(wechatpay.WechatPayError):
        _same("round-trip", wechatpay.from_xml(wechatpay.to_xml(fields)), fields)
    wechatpay.believed(fields, "k" * 32, "HMAC-SHA256", "wx1", "1")
    for reply in (
        wechatpay.pay_reply(fields, "o1", 100),
        wechatpay.query_reply(fields, "o1", 100),
        wechatpay.reverse_reply(fields),
        wechatpay.refund_reply(fields, "r1", 100),
        wechatpay.refund_query_reply(fields, "r1"),
    ):
        if not isinstance(reply.answer, micropay.Answer):
            raise Finding("untyped", f"not an answer: {reply!r}")


def alipay_answers(data: bytes) -> None:
    """An Alipay answer: opened only when signed; the node's bytes found exactly; mapped without surprises."""
    node, why = alipay.open_answer(data, "alipay.trade.pay", ALIPAY_KEY.public_key())
    if node is None and not why:
        raise Finding("untyped", "refused without a reason")
    with contextlib.suppress(ValueError, RecursionError, UnicodeDecodeError, GatewayError):
        whole = json.loads(data)
        if isinstance(whole, dict):
            text = data.decode()
            for name, (start, end) in alipay.members(text).items():
                _same("node-bytes", json.loads(text[start:end]), whole[name])
    mapped = node or (whole if isinstance(whole := _loose(data), dict) else {})
    for reply in (
        alipay.pay_reply(mapped, "o1", 100),
        alipay.query_reply(mapped, "o1", 100),
        alipay.cancel_reply(mapped, "o1"),
        alipay.refund_reply(mapped, "o1"),
    ):
        if not isinstance(reply.answer, micropay.Answer):
            raise Finding("untyped", f"not an answer: {reply!r}")


def _loose(data: bytes) -> object:
    try:
        return read_json(data, "fuzz", max_bytes=1 << 16)
    except GatewayError:
        return None


def statements(data: bytes) -> None:
    for line in read_statement(data).lines:
        if line.amount < 0 or line.kind not in ("pay", "refund"):
            raise Finding("statement", f"an impossible line {line!r}")


def api_bodies(data: bytes) -> None:
    """The local API's request bodies (the POS application's JSON): a typed 400/422, never a 500."""
    for model in API_MODELS:
        with contextlib.suppress(GatewayError):
            contract.read(data, model, "fuzz")


API_MODELS = (contract.NewLine, contract.PaymentRequest, contract.Completion, contract.RefundRequest,
              contract.MemberIdentification, contract.PointsToSpend)  # fmt: skip


# -- valid samples, the fuzzers' seeds ------------------------------------------------------------------------


def _token(prefix: str, subject: str) -> bytes:
    claims = tokens.TokenClaims(
        prefix, subject, 1_800_000_000, 1_800_000_060, "nonce-0123456789", tokens.key_id(PUBLIC)
    )
    return tokens.sign_token(prefix, claims, KEY).encode()


AUTH_APDU = bytes.fromhex("0088000008" + "11" * 8 + "00")


def _card() -> bytes:
    card_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return member_card.issue_card("8600001234", "MALL", "20301231", card_key, KEY, tokens.key_id(PUBLIC)).encode()


def _ecr(kind: str, **fields: str) -> bytes:
    return ecr.EcrMessage(ecr.MessageType(kind), fields).encode()


def _record() -> bytes:
    wire = {
        "txn_id": "01a23514-c924-74b7-a361-4c2e4463fbe8", "terminal_id": "T-1", "seq": 1, "kind": "sale",
        "created_at": "2026-12-02T04:48:04.000Z", "store_id": "S-1", "merchant_id": "M-1", "currency": "CNY",
        "lines": [{"sku": "A", "name": "Egg tart", "category": "bakery", "quantity": 1, "unit_price": 100,
                   "gross": 100, "discount": 0, "net": 100, "refund_line": 0}],
        "total_gross": 100, "total_discount": 0, "total_due": 100,
        "tenders": [{"kind": "cash", "amount": 100}], "change": 0, "member_id": None, "member_via": None,
        "points_earned": 0, "rulebook_version": 1, "offline": False, "coupons": [], "coupons_restored": [],
    }  # fmt: skip
    return json.dumps(wire).encode()


def _wechat_answer() -> bytes:
    fields = {"return_code": "SUCCESS", "appid": "wx1", "mch_id": "1", "result_code": "SUCCESS",
              "out_trade_no": "o1", "total_fee": "100", "transaction_id": "42", "trade_state": "SUCCESS"}  # fmt: skip
    return wechatpay.to_xml(wechatpay.signed(fields, "k" * 32))


def _alipay_answer() -> bytes:
    node = json.dumps({"code": "10000", "out_trade_no": "o1", "total_amount": "1.00", "trade_no": "2026"})
    sign = alipay.sign_rsa2(node, ALIPAY_KEY)
    return f'{{"alipay_trade_pay_response":{node},"sign":"{sign}"}}'.encode()


def _wechat_statement() -> bytes:
    row = ["2026-12-02 10:00:00", "wx1", "1", "0", "", "42", "o1", "u", "MICROPAY", "SUCCESS", "CFT", "CNY", "1.00",
           "0.00", "0", "0", "0.00", "0.00", "", "", "x", "", "0.00600", "0.60%", "1.00", "0.00", ""]  # fmt: skip
    head = ",".join(WECHAT_HEADER)
    return f"{head}\r\n{','.join('`' + c for c in row)}\r\n总交易单数,应结订单总金额\r\n`1,`1.00\r\n".encode()


TARGETS: list[Target] = [
    Target("untrusted-json", untrusted_json, [b'{"a": [1, 2.5, "x", null, true]}', b"[]", b'"\\ud83d\\ude00"']),
    Target("mqtt-payloads", mqtt_payloads, [b'{"version": 3}', b'{"command": "refresh"}']),
    Target("tokens", token, [_token("PM1.", "M1"), _token("PW1.", "M2"), _token("CP1.", "C-1:0123456789abcdef:M1")]),
    Target("command-apdu", command_apdu, [bytes.fromhex("00A4040007A0000000031010"), AUTH_APDU]),
    Target("response-apdu", response_apdu, [bytes.fromhex("9000"), bytes.fromhex("0102036A82")]),
    Target("tlv", tlv_items, [bytes.fromhex("5A0412345678"), bytes.fromhex("7003800101")]),
    Target("card-record", card_record, [_card(), bytes.fromhex("7003800101")]),
    Target("scanner-frames", scanner_frames, [b"\x03]E06901234567892\r\n", b"\x01\x02]Q1PM1.abc\r\n12\r"]),
    Target("ecr-frames", ecr_frames, [b"\x02" + ecr.frame(b"SALE\x1c100")[1:], ecr.frame(b"X") + bytes([ecr.ACK])]),
    Target("ecr-message", ecr_message, [_ecr("SALE", ref="r-1", amount="100"), _ecr("RESULT", ref="r", status="ok")]),
    Target("scanned-codes", scanned_code, [b"6901234567892", b"134567890123456789", b"PM1.a.b"]),
    Target("phone-numbers", phone_number, [b"+86 138-0013-8000", b"13800138000"]),
    Target("records", record, [_record()]),
    Target("sync-batch", sync_batch, [b'{"terminal_id": "T-1", "records": [' + _record() + b"]}"]),
    Target("rulebook", rulebook, [json.dumps(Rulebook(1, "CNY", {}, frozenset(), {}).to_wire()).encode()]),
    Target("member-list", member_list, [b'{"version": 1, "members": [{"member_id": "M1", "tier": "gold"}]}']),
    Target("revocations", revocations, [json.dumps(revocations_to_wire(2, 0, ["C-1:0123456789abcdef"])).encode()]),
    Target("wechatpay-answers", wechatpay_answers, [_wechat_answer()]),
    Target("alipay-answers", alipay_answers, [_alipay_answer()]),
    Target("statements", statements, [_wechat_statement()]),
    Target("payment-machines", payment_machines, [bytes(range(0, 256, 7)), b"\x00\x11\x22\x04\x15"]),
    Target(
        "api-bodies",
        api_bodies,
        [
            b'{"sku": "6901234567892", "unit_price": 4250, "name": "Egg tart", "quantity": 3}',
            b'{"tenders": [{"kind": "cash", "amount": 100}], "receipt_phone": "13800138000"}',
            b'{"txn_id": "01a23514-c924-74b7-a361-4c2e4463fbe8", "lines": [{"line": 1, "quantity": 1}]}',
            b'{"code": "134567890123456789", "amount": 100}',
        ],
    ),
]  # fmt: skip


# -- structural mutations ----------------------------------------------------------------------------------


BAD_BYTES = (b"\\ud800", b"\xff\xfe", b"\xed\xa0\x80", b"\\u0000", b"NaN", b"1e999", b"-0", b"\\")


def mutate(seed: bytes, how: int, at: int, value: int) -> bytes:
    """One structural mutation of ``seed``: bit flips, truncation, splicing, huge numbers, deep nesting,
    bad Unicode, wrong types. ``how``, ``at`` and ``value`` choose which, where and with what."""
    if not seed:
        seed = b"{}"
    at %= len(seed) + 1
    ops: list[Callable[[], bytes]] = [
        lambda: seed[:at] + bytes([seed[at % len(seed)] ^ (1 << (value % 8))]) + seed[at + 1 :],  # bit flip
        lambda: seed[:at],  # truncation
        lambda: seed[:at] + seed[value % (len(seed) + 1) :],  # splice with itself
        lambda: seed[:at] + b"9" * (300 + value % 400) + seed[at:],  # a huge number
        lambda: seed[:at] + b"[" * (20 + value % 2000) + seed[at:],  # deep nesting
        lambda: seed[:at] + BAD_BYTES[value % len(BAD_BYTES)] + seed[at:],  # bad Unicode, non-finite numbers
        lambda: seed.replace(b'"', b"", 1) if value % 2 else seed.replace(b":", b":[", 1),  # wrong types
        lambda: seed * (2 + value % 3),  # repetition
        lambda: bytes((b + value) % 256 for b in seed[:at]) + seed[at:],  # noise
    ]  # fmt: skip
    return ops[how % len(ops)]()


def corpus(target: Target, rounds: int = 4) -> list[bytes]:
    """The seeds and a few deterministic mutations of each: a starting corpus for atheris."""
    out = list(target.seeds)
    for seed, how in itertools.product(target.seeds, range(rounds * 9)):
        out.append(mutate(seed, how, how * 7, how * 13))
    return out
