"""The wallets' credentials in the config: from files or the environment, checked at `posgw config check`,
never printed."""

from __future__ import annotations

import base64
import datetime
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from drivers.alipay import AlipayProvider
from drivers.wechatpay import WechatPayProvider
from gateway.config import parse_config
from protocols.errors import SchemaError
from simulators.provider_keys import (
    Credentials,
    alipay_options,
    issue,
    make_ca,
    pem,
    wechatpay_options,
    write_cert,
)

ENV = {"POSGW_API_TOKEN": "a" * 20, "POSGW_LEDGER_TOKEN": "b" * 20}
BASE = {"terminal": {"id": "T1", "store_id": "S1", "merchant_id": "M1"}, "ledger": {"url": "http://x:1"}}


def config_with(wechat: dict[str, object] | None = None, alipay: dict[str, object] | None = None) -> dict[str, object]:
    providers = []
    if wechat is not None:
        providers.append({"wallet": "wechat", "provider": "wechatpay", "options": wechat})
    if alipay is not None:
        providers.append({"wallet": "alipay", "provider": "alipay", "options": alipay})
    return {**BASE, "payments": {"providers": providers}}


def problems(data: dict[str, object]) -> str:
    with pytest.raises(SchemaError) as err:
        parse_config(data, "cfg.toml", env=ENV)
    return "\n".join(err.value.problems)


def test_both_wallets_load_from_files_and_never_show_their_secrets(provider_credentials: Credentials) -> None:
    creds = provider_credentials
    config = parse_config(
        config_with(wechatpay_options(creds, "https://127.0.0.1:1"), alipay_options(creds, "https://127.0.0.1:2")),
        "cfg.toml",
        env=ENV,
    )
    wechat, alipay = (p for _, p in config.payments.providers)
    assert isinstance(wechat, WechatPayProvider)
    assert isinstance(alipay, AlipayProvider)
    api_key = creds.wechat_key.read_text().strip()
    for shown in (repr(config), str(config), repr(wechat), repr(vars(wechat)), repr(vars(alipay))):
        assert api_key not in shown
        assert "PRIVATE KEY" not in shown


def test_the_api_key_may_come_from_the_environment(
    provider_credentials: Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = wechatpay_options(provider_credentials, "https://127.0.0.1:1")
    del options["api_key_file"]
    assert "no api_key: set api_key_file or the environment variable POSGW_WECHATPAY_API_KEY" in problems(
        config_with(options)
    )
    monkeypatch.setenv("POSGW_WECHATPAY_API_KEY", "k" * 32)
    parse_config(config_with(options), "cfg.toml", env=ENV)
    monkeypatch.setenv("POSGW_WECHATPAY_API_KEY", "short")
    assert "the api_key must be at least 32 characters" in problems(config_with(options))


def test_alipay_keys_may_be_bare_base64_as_alipay_s_tool_prints_them(
    provider_credentials: Credentials, tmp_path: Path
) -> None:
    key = serialization.load_pem_private_key(provider_credentials.app_private.read_bytes(), password=None)
    bare = tmp_path / "bare"
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    bare.write_text(base64.b64encode(der).decode())
    parse_config(
        config_with(alipay=alipay_options(provider_credentials, "https://x", private_key_file=str(bare))),
        "cfg.toml",
        env=ENV,
    )


def test_every_credential_problem_is_named(provider_credentials: Credentials, tmp_path: Path) -> None:
    creds = provider_credentials
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    small = tmp_path / "small.pem"
    small.write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    now = datetime.datetime.now(datetime.UTC)
    ca = make_ca(now - datetime.timedelta(days=400), days=800)
    old_key, old_cert = issue(ca, "10000100", now - datetime.timedelta(days=400), server=False, days=30)
    expired, expired_key = tmp_path / "expired.pem", tmp_path / "expired.key"
    write_cert(expired, old_cert)
    expired_key.write_bytes(pem(old_key))
    text = problems(
        config_with(
            wechatpay_options(creds, "https://x", cert_file=str(expired), key_file=str(expired_key), sign_type="SHA1"),
            alipay_options(creds, "https://x", private_key_file=str(garbage), alipay_public_key_file=str(small)),
        )
    )
    assert "payments.providers[0].options.cert_file: the certificate expired on" in text
    assert "payments.providers[0].options.sign_type: expected one of MD5, HMAC-SHA256" in text
    assert "payments.providers[1].options.private_key: not an RSA private key" in text
    assert "payments.providers[1].options.alipay_public_key: not an RSA public key" in text  # a private key's file
    text = problems(config_with(alipay=alipay_options(creds, "https://x", private_key_file=str(small))))
    assert "a 1024-bit key; RSA2 needs at least 2048 bits" in text
    no_cert = wechatpay_options(creds, "https://x")
    del no_cert["cert_file"]
    assert "the merchant's API certificate (cert_file and key_file) is required" in problems(config_with(no_cert))
    assert "cannot read /nonexistent/key" in problems(
        config_with(alipay=alipay_options(creds, "https://x", private_key_file="/nonexistent/key"))
    )


def test_config_check_names_an_expired_certificate(provider_credentials: Credentials, tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca = make_ca(now - datetime.timedelta(days=100), days=200)
    old_key, old_cert = issue(ca, "10000100", now - datetime.timedelta(days=100), server=False, days=10)
    write_cert(tmp_path / "cert.pem", old_cert)
    (tmp_path / "cert.key").write_bytes(pem(old_key))
    options = wechatpay_options(provider_credentials, "https://x", cert_file="cert.pem", key_file="cert.key")
    lines = "\n".join(f'{k} = "{v}"' for k, v in options.items())
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[terminal]\nid = "T1"\nstore_id = "S1"\nmerchant_id = "M1"\n[ledger]\nurl = "http://x:1"\n'
        f'[[payments.providers]]\nwallet = "wechat"\nprovider = "wechatpay"\n[payments.providers.options]\n{lines}\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "check", str(config)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", **ENV},
    )
    assert result.returncode == 78
    assert "cert_file: the certificate expired on" in result.stderr
    assert provider_credentials.wechat_key.read_text().strip() not in result.stderr + result.stdout


def test_the_example_config_s_wallet_blocks_parse_once_uncommented(provider_credentials: Credentials) -> None:
    """The commented WeChat Pay and Alipay blocks of config/gateway.example.toml, filled in as a merchant would."""
    example = (Path(__file__).resolve().parents[2] / "config" / "gateway.example.toml").read_text()
    blocks = re.findall(r"(?m)^# \[\[payments\.providers\]\]\n# wallet = \"(?:wechat|alipay)\"\n(?:#.*\n)+", example)
    assert len(blocks) == 2
    uncommented = "\n".join(line[1:] for block in blocks for line in block.splitlines())
    text = uncommented.replace("/etc/posgw/payments", str(provider_credentials.folder))
    text = text.replace("wechatpay_api_key", provider_credentials.wechat_key.name)
    config = parse_config({**BASE, **tomllib.loads(text)}, "example", env=ENV)
    assert [(wallet, type(p).__name__) for wallet, p in config.payments.providers] == [
        ("wechat", "WechatPayProvider"),
        ("alipay", "AlipayProvider"),
    ]


def test_a_ca_file_that_cannot_be_used_is_named_once(provider_credentials: Credentials) -> None:
    text = problems(config_with(wechatpay_options(provider_credentials, "https://x", ca_file="/nonexistent/ca.pem")))
    assert text.count("payments.providers[0].options.ca_file: cannot use /nonexistent/ca.pem") == 1
