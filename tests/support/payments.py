"""Build x402 payment requests the way a client would, signed with eth-account (the test oracle)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from tests.support.eip3009 import sign_transfer_authorization

BASE_SEPOLIA = "eip155:84532"
USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"


def requirements_v2(pay_to: str, amount: int, *, asset: str = USDC, network: str = BASE_SEPOLIA,
                    **overrides: Any) -> dict[str, Any]:
    req = {"scheme": "exact", "network": network, "amount": str(amount), "asset": asset, "payTo": pay_to,
           "maxTimeoutSeconds": 300, "extra": {"name": "USDC", "version": "2"}}
    req.update(overrides)
    return req


def requirements_v1(pay_to: str, amount: int, *, asset: str = USDC, network: str = "base-sepolia",
                    **overrides: Any) -> dict[str, Any]:
    req = {"scheme": "exact", "network": network, "maxAmountRequired": str(amount), "asset": asset,
           "payTo": pay_to, "resource": "http://provider.test/thing", "description": "a thing",
           "mimeType": "application/json", "maxTimeoutSeconds": 300, "extra": {"name": "USDC", "version": "2"}}
    req.update(overrides)
    return req


@dataclass(frozen=True)
class Signed:
    """A signed exact-EVM payload body plus what went into it, for assertions."""

    authorization: dict[str, str]
    signature: str

    def payload(self) -> dict[str, Any]:
        return {"signature": self.signature, "authorization": dict(self.authorization)}


def sign_exact(
    account: LocalAccount,
    *,
    to: str,
    value: int,
    valid_after: int = 0,
    valid_before: int | None = None,
    nonce: bytes | None = None,
    chain_id: int = 84532,
    token: str = USDC,
    name: str = "USDC",
    version: str = "2",
    from_address: str | None = None,
) -> Signed:
    valid_before = int(time.time()) + 300 if valid_before is None else valid_before
    nonce = os.urandom(32) if nonce is None else nonce
    signed = sign_transfer_authorization(
        account, token_address=token, chain_id=chain_id, to=to, value=value, valid_after=valid_after,
        valid_before=valid_before, nonce=nonce, name=name, version=version, from_address=from_address,
    )
    authorization = {"from": signed.from_address, "to": signed.to, "value": str(value), "validAfter": str(valid_after),
                     "validBefore": str(valid_before), "nonce": "0x" + nonce.hex()}
    return Signed(authorization=authorization, signature="0x" + signed.signature.hex())


def body_v2(signed: Signed, requirements: dict[str, Any], **payload_overrides: Any) -> dict[str, Any]:
    payload = {"x402Version": 2, "payload": signed.payload(), "accepted": dict(requirements),
               "resource": {"url": "http://provider.test/thing"}}
    payload.update(payload_overrides)
    return {"x402Version": 2, "paymentPayload": payload, "paymentRequirements": requirements}


def body_v1(signed: Signed, requirements: dict[str, Any]) -> dict[str, Any]:
    payload = {"x402Version": 1, "scheme": "exact", "network": requirements["network"], "payload": signed.payload()}
    return {"x402Version": 1, "paymentPayload": payload, "paymentRequirements": requirements}


def paid_body(account: LocalAccount, pay_to: str, amount: int, *, version: int = 2, **sign_args: Any) -> dict:
    """A valid request body: requirements for ``amount`` to ``pay_to`` and a matching signed payment."""
    signed = sign_exact(account, to=pay_to, value=amount, **sign_args)
    if version == 1:
        return body_v1(signed, requirements_v1(pay_to, amount))
    return body_v2(signed, requirements_v2(pay_to, amount))
