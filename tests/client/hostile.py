"""A hostile x402 payee on a real loopback port, and the way it cashes what it collected on anvil.

The payee offers a requirement, keeps every payment it is sent, and never admits to being paid: it
answers the paid retry with a 402 (with or without a failure receipt), a 500, or by dropping the
connection. Anyone holding a signed EIP-3009 authorization can submit it until ``validBefore``, so
:func:`cash` is exactly what such a payee would do with its collection.

A stdlib ``ThreadingHTTPServer`` rather than uvicorn: dropping the connection mid-request is part of
the attack, and an ASGI app cannot do that (uvicorn answers 500 for it).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from app.dev.devchain import DevChain
from app.protocol import encode_header
from tests.support.payments import requirements_v1, requirements_v2

Answer = Literal["402", "402 with a failure receipt", "500", "drop"]
ANSWERS: tuple[Answer, ...] = ("402", "402 with a failure receipt", "500", "drop")
_FAILURE_RECEIPT = {"success": False, "transaction": "", "network": "eip155:84532", "errorReason": "unexpected"}


@dataclass
class HostilePayee:
    """What the payee offers and what it has collected (decoded payment payloads, in arrival order)."""

    requirement: dict[str, Any]
    version: Literal[1, 2]
    answer: Answer
    url: str = ""
    collected: list[dict[str, Any]] = field(default_factory=list)
    unpaid_requests: int = 0

    def payment_required(self) -> tuple[dict[str, str], bytes]:
        """Headers and body of the 402 that asks for payment (v2: a header; v1: a JSON body)."""
        if self.version == 2:
            header = encode_header({"x402Version": 2, "error": "Payment required", "resource": {"url": self.url},
                                    "accepts": [self.requirement]})
            return {"PAYMENT-REQUIRED": header}, b"{}"
        body = {"x402Version": 1, "error": "X-PAYMENT header is required", "accepts": [self.requirement]}
        return {}, json.dumps(body).encode()

    def signed_total(self) -> int:
        """The sum of the values of every authorization collected (atomic units)."""
        return sum(int(payment["payload"]["authorization"]["value"]) for payment in self.collected)


def offer(pay_to: str, amount: int, *, version: Literal[1, 2] = 2, **overrides: Any) -> dict[str, Any]:
    """The requirement a payee offers: USDC on Base Sepolia (the dev chain) unless overridden."""
    if version == 1:
        return requirements_v1(pay_to, amount, **overrides)
    return requirements_v2(pay_to, amount, **overrides)


def _handler(payee: HostilePayee, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            header = self.headers.get("PAYMENT-SIGNATURE") or self.headers.get("X-PAYMENT")
            if header is None:
                with lock:
                    payee.unpaid_requests += 1
                self._answer(402, *payee.payment_required())
                return
            with lock:
                payee.collected.append(json.loads(base64.b64decode(header)))
            if payee.answer == "drop":
                self.close_connection = True  # no status line at all: the client sees a dropped connection
                return
            if payee.answer == "500":
                self._answer(500, {}, b"internal error")
                return
            headers, body = payee.payment_required()
            if payee.answer == "402 with a failure receipt":
                headers = {**headers, "PAYMENT-RESPONSE": encode_header(_FAILURE_RECEIPT)}
            self._answer(402, headers, body)

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests assert on what was collected, not on access logs."""

    return Handler


@contextmanager
def hostile_payee(requirement: dict[str, Any], *, version: Literal[1, 2] = 2,
                  answer: Answer = "402") -> Iterator[HostilePayee]:
    """Serve the payee on a free loopback port; yields it with ``url`` set; stopped (threads joined) on exit."""
    payee = HostilePayee(requirement=requirement, version=version, answer=answer)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(payee, threading.Lock()))
    payee.url = f"http://127.0.0.1:{server.server_address[1]}/thing"
    if version == 1:
        payee.requirement = {**requirement, "resource": payee.url}
    thread = threading.Thread(target=server.serve_forever, name="hostile-payee", daemon=True)
    thread.start()
    try:
        yield payee
    finally:
        server.shutdown()
        server.server_close()  # joins the request threads
        thread.join(timeout=10)


def transfer_call(token: Contract, payment: dict[str, Any]) -> Any:
    """``transferWithAuthorization`` (v, r, s overload) for a collected payment, exactly as it was signed."""
    authorization = payment["payload"]["authorization"]
    signature = bytes.fromhex(payment["payload"]["signature"][2:])
    return token.functions.transferWithAuthorization(
        Web3.to_checksum_address(authorization["from"]), Web3.to_checksum_address(authorization["to"]),
        int(authorization["value"]), int(authorization["validAfter"]), int(authorization["validBefore"]),
        bytes.fromhex(authorization["nonce"][2:]), signature[64], signature[:32], signature[32:64],
    )


def cash(w3: Web3, token: Contract, sender: LocalAccount, payment: dict[str, Any], *,
         anvil: DevChain | None = None, at: int | None = None) -> TxReceipt:
    """Submit a collected authorization on chain from ``sender`` (any funded account can), mined at ``at``.

    Gas is fixed so a transfer that reverts is still mined and its receipt says status 0.
    """
    if at is not None:
        assert anvil is not None, "moving the chain's clock needs the anvil handle"
        anvil.rpc("evm_setNextBlockTimestamp", [at])
    transaction = transfer_call(token, payment).build_transaction(
        {"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address), "gas": 200_000})
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(transaction).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
