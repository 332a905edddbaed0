"""The member's stored-value wallet as a payment provider: ``PW1.`` codes, paid through the ledger.

Every code pays once: its nonce is recorded in the journal before anything
else, whatever attached the member, and the ledger, which checks the code
itself, refuses a second hold for it. Online, pay holds the amount at the
ledger (keyed by the payment id) and the sale's ``wallet`` tender, which
names the code, later debits it. Offline, the rulebook's risk limits
decide: per sale, per member at this till, with the snapshot's balance less
what this till spent since. Query asks the ledger about the hold. Reverse
releases it; if the ledger cannot be reached the hold lapses by itself, and
since only a sale record ever debits a wallet, nothing is charged either way.
"""

from __future__ import annotations

from gateway.ledger_link.client import LedgerClient
from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import MemberDirectory
from gateway.members.risk import stale_reason
from gateway.payments.held import held_step, hold_online
from offline_queue.journal import TransactionJournal
from protocols.errors import GatewayError
from protocols.micropay import Answer, Reply, Step
from protocols.money import format_cny
from protocols.rulebook import MemberEntry


class MemberWalletProvider:
    name = "wallet"

    def __init__(
        self,
        terminal_id: str,
        directory: MemberDirectory,
        journal: TransactionJournal,
        link: LedgerLink,
        client: LedgerClient,
        leeway: int,
    ) -> None:
        self.terminal_id = terminal_id
        self.directory = directory
        self.journal = journal
        self.link = link
        self.client = client
        self.leeway = leeway

    async def call(self, step: Step, ref: str, code: str, amount: int) -> Reply:
        if step is Step.PAY:
            return await self._pay(ref, code, amount)
        return await held_step(self.client, step, ref)

    async def _pay(self, ref: str, code: str, amount: int) -> Reply:
        try:
            match = self.directory.identify_token(code, now=int(self.link.clock()), leeway=self.leeway)
        except GatewayError as err:
            return Reply(Answer.FAILED, {"reason": str(err)})
        member, nonce = match.member, match.token_nonce
        assert nonce is not None  # a verified token always has one
        # Used once, whatever attached the member (the code itself, a phone number, a card) and whatever
        # this payment's outcome: a code shown twice is a code copied.
        if earlier := await self.journal.payments.claim_code(nonce, ref):
            used = "a sale" if not earlier.startswith("payment:") else "another payment"
            return Reply(
                Answer.FAILED, {"reason": f"this wallet code was already used for {used}: ask for a fresh one"}
            )
        detail = {"member_id": member.member_id, "code": nonce}
        held = await hold_online(
            self.link,
            lambda: self.client.hold_wallet(member.member_id, amount, ref, self.terminal_id, code),
            detail,
            "the wallet",
        )
        if held is not None:
            return held
        if refusal := await self._offline_refusal(member, amount):
            return Reply(Answer.FAILED, {**detail, "reason": refusal})
        return Reply(Answer.SUCCESS, {**detail, "offline": "1"})

    async def _offline_refusal(self, member: MemberEntry, amount: int) -> str | None:
        """Why the rulebook's risk limits refuse this offline payment, or None."""
        risk = self.directory.rulebook.risk
        if amount > risk.max_wallet_per_sale:
            return f"offline, at most {format_cny(risk.max_wallet_per_sale)} may be paid from the wallet on one sale"
        if reason := stale_reason(self.link, self.directory, "stored value"):
            return reason
        spent, spent_offline = await self.journal.payments.wallet_spending(member.member_id, self.directory.loaded_at)
        balance = member.wallet - spent
        if amount > balance:
            return f"the wallet has {format_cny(max(balance, 0))} as this till knows it"
        if spent_offline + amount > risk.max_member_wallet:
            left = max(0, risk.max_member_wallet - spent_offline)
            return f"offline, this member may pay {format_cny(left)} more from the wallet at this till"
        return None

    async def close(self) -> None:
        """The ledger client belongs to the gateway; nothing of its own to close."""
