"""Payment providers: what a wallet's scan-to-pay service looks like to the gateway.

A provider answers the three micropay calls for one wallet. Providers are
plugins, like drivers: built-ins here, others from the ``posgw.payments``
entry points, each built from its ``[[payments.providers]]`` options.
"""

from __future__ import annotations

from datetime import date
from importlib.metadata import EntryPoint
from typing import Protocol, cast, runtime_checkable

from drivers.registry import PluginRegistry
from protocols.micropay import Reply, Step
from protocols.schema import Fields

GROUP = "posgw.payments"
# Scan-to-pay wallets, as protocols.codes.payment_provider names them, and the bank-card terminal.
WALLETS = ("wechat", "alipay", "card")
WALLET_NAMES = {
    "wechat": "WeChat Pay",
    "alipay": "Alipay",
    "card": "The bank-card terminal",
    "wallet": "The member wallet",
    "giftcard": "A gift card",
}
BUILTIN: dict[str, str] = {
    "wechatpay": "drivers.wechatpay:WechatPayProvider",
    "alipay": "drivers.alipay:AlipayProvider",
    "micropay-http": "drivers.micropay_http:MicropayHttpProvider",
    "ecr-serial": "drivers.ecr_terminal:EcrTerminal",
}


class PaymentProvider(Protocol):
    name: str

    async def call(self, step: Step, ref: str, code: str, amount: int) -> Reply:
        """One provider call; anything but an explicit answer is ``UNKNOWN`` (or ``UNREACHABLE``).

        For ``Step.REFUND``, ``ref`` is the refund's own reference and ``code`` the original payment's.
        """
        ...

    async def close(self) -> None: ...


@runtime_checkable
class StatementSource(Protocol):
    """A provider that can also fetch its wallet's statement of a China-time calendar day, as published."""

    async def statement(self, day: date) -> bytes: ...

    async def close(self) -> None: ...


class ProviderClass(Protocol):
    @classmethod
    def from_options(cls, name: str, options: Fields) -> PaymentProvider: ...


class ProviderRegistry(PluginRegistry):
    __slots__ = ()

    @classmethod
    def discover(cls, extra: list[EntryPoint] | None = None) -> ProviderRegistry:
        found = PluginRegistry.scan("payment provider", GROUP, BUILTIN, extra or [])
        return cls(found.kind, found.targets, found.refused)

    def load(self, name: str) -> ProviderClass:
        return cast("ProviderClass", self.load_object(name))
