from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.config import load_config, parse_config
from protocols.errors import SchemaError

REPO = Path(__file__).resolve().parents[2]
ENV = {"POSGW_API_TOKEN": "a" * 20, "POSGW_LEDGER_TOKEN": "b" * 20}


@pytest.mark.parametrize("name", ["gateway.example.toml", "demo.toml"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(REPO / "config" / name, env=ENV)
    assert config.api.host == "127.0.0.1"
    assert config.devices[0].driver == "serial-scanner"


def test_relative_paths_follow_the_config_file() -> None:
    config = load_config(REPO / "config" / "demo.toml", env=ENV)
    assert config.state_dir == REPO / ".demo" / "gateway"


def test_tokens_come_from_a_file_or_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "api-token"
    secret.write_text("from-a-file-0123456789\n")
    os.chmod(secret, 0o600)
    data = {
        "terminal": {"id": "T1", "store_id": "S1", "merchant_id": "M1"},
        "api": {"token_file": str(secret)},
        # A config from before enrolment still loads: its ledger token is no longer used (tills sign).
        "ledger": {"url": "http://x:1", "token_env": "MY_LEDGER_TOKEN"},
    }
    config = parse_config(data, "t", env={"MY_LEDGER_TOKEN": "c" * 16})
    assert config.api.token == "from-a-file-0123456789"
    assert "c" * 16 not in repr(config)
    assert "from-a-file" not in repr(config)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = {
        "terminal": {"id": "T1", "store_id": "S1", "merchant_id": "M1", "currency": "USD"},
        "api": {"host": "10.0.0.5", "token_file": str(tmp_path / "missing")},
        "ledger": {"url": "http://x:1", "batch_size": 0},
        "devices": [
            {"name": "s", "driver": "serial-scanner", "options": {"port": "/dev/x", "baudrate": 7}},
            {"name": "s", "driver": "serial-scanner", "options": {"port": "/dev/y", "speed": 9600}},
        ],
        "extra": 1,
    }
    with pytest.raises(SchemaError) as err:
        parse_config(data, "cfg.toml", env={"POSGW_LEDGER_TOKEN": "short"})
    assert err.value.source == "cfg.toml"
    assert err.value.problems == [
        "terminal.currency: expected one of CNY; got 'USD'",
        "api.token_file: cannot read " + str(tmp_path / "missing") + ": No such file or directory",
        "api.host: 10.0.0.5 is not a loopback address; set allow_remote = true to mean it",
        "ledger.batch_size: must be at least 1, got 0",
        "devices[0].options.baudrate: expected one of (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)",
        "devices[1].name: device name 's' is used twice",
        "devices[1].options.speed: unknown key",
        "extra: unknown key",
    ]


def test_a_plugin_shadowing_a_builtin_driver_is_recorded_for_the_start_log() -> None:
    from importlib.metadata import EntryPoint

    from drivers.registry import DriverRegistry

    shadow = EntryPoint("serial-scanner", "acme.scanner:Scanner", "posgw.drivers")
    data = {
        "terminal": {"id": "T1", "store_id": "S1", "merchant_id": "M1"},
        "ledger": {"url": "http://x:1"},
        "devices": [{"name": "s", "driver": "serial-scanner", "options": {"port": "/dev/ttyUSB0"}}],
    }
    config = parse_config(data, "t", env=ENV, registry=DriverRegistry.discover([shadow]))
    assert config.devices[0].device.__class__.__name__ == "SerialScanner"  # the built-in still serves
    assert config.refused_plugins == ("acme.scanner:Scanner tried to replace the built-in 'serial-scanner' driver",)


def test_payment_providers_are_checked_with_every_problem_named() -> None:
    base = {
        "terminal": {"id": "T1", "store_id": "S1", "merchant_id": "M1"},
        "ledger": {"url": "http://x:1"},
    }
    good = {"wallet": "wechat", "provider": "micropay-http", "options": {"url": "http://127.0.0.1:9/w"}}
    config = parse_config({**base, "payments": {"deadline": 20, "providers": [good]}}, "t", env=ENV)
    assert config.payments.deadline == 20
    assert [(wallet, p.name) for wallet, p in config.payments.providers] == [("wechat", "wechat")]
    bad = {
        "deadline": 1,
        "providers": [
            good,
            {**good, "options": {"url": "ftp://nope"}},
            {"wallet": "paypal", "provider": "micropay-http", "options": {"url": "http://a"}},
            {"wallet": "alipay", "provider": "no-such-provider"},
        ],
    }
    with pytest.raises(SchemaError) as err:
        parse_config({**base, "payments": bad}, "cfg.toml", env=ENV)
    text = "\n".join(err.value.problems)
    assert "payments.deadline" in text
    assert "'wechat' has two providers" in text
    assert "payments.providers[1].options.url" in text
    assert "payments.providers[2].wallet: expected one of wechat, alipay" in text
    assert (
        "no payment provider named 'no-such-provider' (installed: alipay, ecr-serial, micropay-http, wechatpay)" in text
    )


def test_mqtt_over_tls_defaults_to_8883_and_needs_its_ca_file(tmp_path: Path) -> None:
    env = {"POSGW_API_TOKEN": "a" * 16, "POSGW_LEDGER_TOKEN": "b" * 16}

    def mqtt(**given: object) -> tuple[bool, int, str | None]:
        base = {"terminal": {"id": "T1", "store_id": "S1", "merchant_id": "M1"}, "ledger": {"url": "http://x:1"}}
        config = parse_config({**base, "mqtt": {"host": "mqtt.mall", "mall": "m", **given}}, "t", env=env).mqtt
        assert config is not None
        return config.tls, config.port, config.ca_file

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert mqtt() == (False, 1883, None)
    assert mqtt(tls=True) == (True, 8883, None)  # the system's CAs
    assert mqtt(ca_file=str(ca)) == (True, 8883, str(ca))
    with pytest.raises(SchemaError) as refused:
        mqtt(ca_file=str(tmp_path / "gone.pem"))
    assert "mqtt.ca_file" in str(refused.value.problems)
