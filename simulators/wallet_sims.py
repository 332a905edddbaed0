"""Both simulated wallets, WeChat Pay and Alipay, served over TLS on free ports, with their books."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators.alipay import AlipaySim
from simulators.alipay import build_app as alipay_app
from simulators.processes import free_port
from simulators.provider_keys import ALIPAY_APP_ID, APPID, MCH_ID, Credentials, server_tls
from simulators.wechatpay import WechatPaySim
from simulators.wechatpay import build_app as wechatpay_app


def wechatpay_sim(creds: Credentials) -> WechatPaySim:
    return WechatPaySim(api_key=creds.wechat_key.read_text().strip(), appid=APPID, mch_id=MCH_ID)


def alipay_sim(creds: Credentials) -> AlipaySim:
    app_public = serialization.load_pem_public_key(creds.app_public.read_bytes())
    alipay_private = serialization.load_pem_private_key(creds.alipay_private.read_bytes(), password=None)
    if not isinstance(app_public, rsa.RSAPublicKey) or not isinstance(alipay_private, rsa.RSAPrivateKey):
        raise TypeError(f"the Alipay simulator's keys under {creds.folder} are not RSA keys")
    return AlipaySim(ALIPAY_APP_ID, app_public, alipay_private)


@dataclass
class Wallets:
    creds: Credentials
    wechat: WechatPaySim
    alipay: AlipaySim
    wechat_url: str
    alipay_url: str


@asynccontextmanager
async def serving_wallets(creds: Credentials) -> AsyncIterator[Wallets]:
    """Both simulators in this process over HTTPS (the CA is ``creds.ca``)."""
    wechat, alipay = wechatpay_sim(creds), alipay_sim(creds)
    runners = [web.AppRunner(wechatpay_app(wechat), shutdown_timeout=1.0),
               web.AppRunner(alipay_app(alipay), shutdown_timeout=1.0)]  # fmt: skip
    ports = []
    try:
        for runner in runners:
            await runner.setup()
            ports.append(free_port())
            await web.TCPSite(runner, "127.0.0.1", ports[-1], ssl_context=server_tls(creds)).start()
        yield Wallets(
            creds, wechat, alipay, f"https://127.0.0.1:{ports[0]}", f"https://127.0.0.1:{ports[1]}/gateway.do"
        )
    finally:
        for runner in runners:
            await runner.cleanup()
