"""A POS team's view of the contract: a typed client generated from /openapi.json completes a sale.

The client is generated with ``openapi-python-client`` and run as the POS
team's own program would be: in its own interpreter (the tools venv, which
has httpx and attrs), never imported into the daemon's.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from tests.harness import TOOLS, gateway_config, running_gateway

# The POS team's program: typed end to end, from the models and functions the generator made.
DRIVER = """
import json, sys
from posgw_client import AuthenticatedClient
from posgw_client.api.default import add_line, complete_sale, create_basket, get_status
from posgw_client.models import BasketView, CashTender, CashTenderKind, Completion, NewLine, Sale, Status

with AuthenticatedClient(base_url=sys.argv[1], token=sys.argv[2]) as client:
    status = get_status.sync(client=client)
    assert isinstance(status, Status), status
    basket = create_basket.sync(client=client)
    assert isinstance(basket, BasketView), basket
    line = NewLine(sku="6901234567892", unit_price=1_250, quantity=2)
    priced = add_line.sync(basket.basket_id, client=client, body=line)
    assert isinstance(priced, BasketView), priced
    body = Completion(tenders=[CashTender(kind=CashTenderKind.CASH, amount=3_000)])
    sale = complete_sale.sync(basket.basket_id, client=client, body=body, idempotency_key="generated-client-1")
    again = complete_sale.sync(basket.basket_id, client=client, body=body, idempotency_key="generated-client-1")
    assert isinstance(sale, Sale) and isinstance(again, Sale), (sale, again)
    print(json.dumps({
        "version": status.version,
        "due": priced.total_due,
        "total": sale.record.total_due,
        "change": sale.record.change,
        "quantity": sale.record.lines[0].quantity,
        "replayed": [sale.replayed, again.replayed],
        "same": sale.record.txn_id == again.record.txn_id,
    }))
"""


def tool(argv: list[str], where: Path) -> str:
    env = {**os.environ, "PATH": f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def generate_and_drive(document: dict[str, Any], where: Path, base_url: str, token: str) -> dict[str, Any]:
    (where / "openapi.json").write_text(json.dumps(document), encoding="utf-8")
    generator = str(TOOLS / "openapi-python-client")
    generated = tool(
        [generator, "generate", "--path", "openapi.json", "--output-path", "posgw_client", "--meta", "none"], where
    )
    assert "Warning" not in generated, generated  # every schema understood: nothing skipped, nothing made Any
    models = {p.stem for p in (where / "posgw_client" / "models").glob("*.py")}
    assert "problem" in models
    assert not any(m.startswith("problem_") for m in models)  # one problem model, not a copy per error
    (where / "driver.py").write_text(DRIVER, encoding="utf-8")
    result: dict[str, Any] = json.loads(tool([str(TOOLS / "python"), "driver.py", base_url, token], where))
    return result


async def test_a_client_generated_from_the_document_completes_a_sale(tmp_path: Path, tokens: dict[str, str]) -> None:
    config = gateway_config(tmp_path / "gw", "http://127.0.0.1:9", tokens)
    async with running_gateway(config) as (gw, _pos):
        base = f"http://127.0.0.1:{gw.port}"
        async with aiohttp.ClientSession() as http, http.get(f"{base}/openapi.json") as r:
            document = await r.json()
        result = await asyncio.to_thread(generate_and_drive, document, tmp_path, base, tokens["api"])
    assert result["version"] == document["info"]["version"]
    assert (result["due"], result["total"], result["change"], result["quantity"]) == (2_500, 2_500, 500, 2)
    assert result["replayed"] == [False, True]
    assert result["same"] is True
