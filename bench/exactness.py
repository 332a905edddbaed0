"""The long run: a million random baskets, paid any way and refunded in pieces, checked to the fen and the point.

Each case (``simulators/exactness.py``) is priced and recorded as a till does,
refunded in random partial refunds until nothing is left, and every figure
is checked to add up per line and in total; then the ledger's re-check
(``ledger/recheck.py``) must believe the sale and every refund, since they are
honest: the till and the ledger agree on every figure. Prints the mismatch
count, which must be 0. Not in CI (it takes minutes); ``make bench`` runs it.

    python -m bench.exactness [CASES] [--workers N]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import random
import sys
import time

from ledger import recheck
from ledger.gift_cards import Card, holder
from ledger.holds import Hold
from protocols.records import TransactionRecord
from simulators.exactness import GIFT_CARD, Case, check_case, random_case

CHUNK = 2_000


def ledger_refusals(case: Case, sale: TransactionRecord, refunds: list[TransactionRecord]) -> list[str]:
    """What the ledger would quarantine of an honest case (nothing, if tills and ledger agree)."""
    member = None
    if case.member is not None:
        member = recheck.MemberView(case.member.tier, frozenset({case.member.tier}))
    # The wallet payments were held at the ledger first, as a till online does.
    holds = {
        t.ref: Hold(t.ref, "fen", sale.member_id or "", t.amount, sale.terminal_id, None, "pending", 1e12, None)
        for t in sale.tenders
        if t.kind == "wallet" and t.ref
    } | {  # a gift card is held on the card, as the till asks online
        t.ref: Hold(t.ref, "fen", holder(t.card), t.amount, sale.terminal_id, None, "pending", 1e12, None)
        for t in sale.tenders
        if t.kind == "giftcard" and t.ref and t.card
    }
    cards = {GIFT_CARD: Card(GIFT_CARD, "active", 10**12, None)}
    if sale.points_redeemed:  # points spent online are held too
        sale = dataclasses.replace(sale, reservation="r1")
        holds["r1"] = Hold("r1", "points", sale.member_id or "", sale.points_redeemed, sale.terminal_id, sale.txn_id,
                           "pending", 1e12, None)  # fmt: skip
    bad: list[str] = []
    shop = recheck.Shop(None, None)
    verdict = recheck.check(sale, recheck.Context(shop, lambda v: case.book, member, holds, cards=cards))
    if verdict.refusal:
        bad.append(f"the ledger would quarantine the sale: {verdict.refusal}")
    for i, refund in enumerate(refunds):
        context = recheck.Context(shop, lambda v: case.book, member, holds, sale=sale, sale_state="applied",
                                  earlier=refunds[:i], cards=cards)  # fmt: skip
        if (refusal := recheck.check(refund, context).refusal) is not None:
            bad.append(f"the ledger would quarantine refund {i + 1}: {refusal}")
    return bad


def _chunk(seed: int) -> tuple[int, int, list[str]]:
    rng = random.Random(seed)
    cases = mismatched = 0
    examples: list[str] = []
    for _ in range(CHUNK):
        case = random_case(rng)
        bad = check_case(case, also=lambda sale, refunds, case=case: ledger_refusals(case, sale, refunds))  # type: ignore[misc]
        cases += 1
        if bad:
            mismatched += 1
            examples += bad[:2]
    return cases, mismatched, examples[:5]


def run(cases: int = 1_000_000, workers: int | None = None) -> dict[str, object]:
    workers = workers or multiprocessing.cpu_count()
    seeds = list(range(max(1, cases // CHUNK)))
    started = time.perf_counter()
    done = mismatched = 0
    examples: list[str] = []
    with multiprocessing.get_context("forkserver").Pool(workers) as pool:
        for n, bad, seen in pool.imap_unordered(_chunk, seeds):
            done, mismatched = done + n, mismatched + bad
            examples += seen
            if done % 100_000 < CHUNK:
                print(f"  {done:,} / {len(seeds) * CHUNK:,} cases, {mismatched} mismatched", file=sys.stderr)
    return {"cases": done, "mismatched": mismatched, "seconds": time.perf_counter() - started, "examples": examples[:5]}


def report(r: dict[str, object]) -> None:
    print(
        f"  {r['cases']:,} random baskets, each refunded in random pieces, till and ledger: "
        f"{r['mismatched']} mismatched ({r['seconds']:.0f} s)"
    )
    for example in r["examples"]:  # type: ignore[attr-defined]
        print(f"    e.g. {example}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.exactness")
    parser.add_argument("cases", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    result = run(args.cases, args.workers)
    report(result)
    return 0 if result["mismatched"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
