"""The reference facilitator for side-by-side benchmarks: the official x402 SDK's ``x402Facilitator``
wrapped in FastAPI the way the SDK's example does it. Benchmark-only; app/ never imports the SDK.

    python scripts/bench/reference_facilitator.py --rpc-url URL --port PORT   (key from X402_FACILITATOR_PRIVATE_KEY)
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from fastapi import FastAPI
from x402 import x402Facilitator
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.exact import register_exact_evm_facilitator
from x402.schemas import parse_payment_payload, parse_payment_requirements


def build_app(rpc_url: str, private_key: str) -> FastAPI:
    signer = FacilitatorWeb3Signer(private_key=private_key, rpc_url=rpc_url, confirmation_timeout_seconds=30)
    facilitator = x402Facilitator()
    register_exact_evm_facilitator(facilitator, signer, networks=["eip155:84532"])
    app = FastAPI()

    def parse(body: dict):  # type: ignore[no-untyped-def]
        payload = parse_payment_payload(body["paymentPayload"])
        return payload, parse_payment_requirements(payload.x402_version, body["paymentRequirements"])

    @app.post("/verify")
    async def verify(body: dict) -> dict:
        result = await facilitator.verify(*parse(body))
        return result.model_dump(by_alias=True, exclude_none=True)

    @app.post("/settle")
    async def settle(body: dict) -> dict:
        result = await facilitator.settle(*parse(body))
        return result.model_dump(by_alias=True, exclude_none=True)

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = build_app(args.rpc_url, os.environ["X402_FACILITATOR_PRIVATE_KEY"])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
