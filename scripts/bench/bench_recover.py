"""Signature-recovery throughput: eth_account's typed-data path vs our hand-rolled digest + coincurve.

Usage: .venv/bin/python scripts/bench/bench_recover.py [--count 5000] [--seed 402]

Both paths process the same random signed EIP-3009 authorizations (a fresh payer key per
authorization, so the checksum cache does not flatter our path) in one single-threaded pass each, and
every recovered address is checked against the signer before any figure is printed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere: app/ and tests/ importable

from app.chain.eip712 import domain_separator, transfer_authorization_digest
from app.chain.signatures import checksum_address, recover_address, recover_signer
from tests.support.eip3009 import AUTHORIZATION_TYPE
from tests.support.eip3009 import EIP712_DOMAIN_TYPE as DOMAIN_TYPE

DOMAIN = {
    "name": "USDC",
    "version": "2",
    "chainId": 84532,
    "verifyingContract": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
}


@dataclass(frozen=True)
class Sample:
    payer: str
    to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes
    signature: bytes

    def full_message(self) -> dict[str, Any]:
        return {
            "types": {"EIP712Domain": DOMAIN_TYPE, "TransferWithAuthorization": AUTHORIZATION_TYPE},
            "primaryType": "TransferWithAuthorization",
            "domain": DOMAIN,
            "message": {
                "from": self.payer,
                "to": self.to,
                "value": self.value,
                "validAfter": self.valid_after,
                "validBefore": self.valid_before,
                "nonce": self.nonce,
            },
        }


def make_samples(count: int, rng: random.Random) -> list[Sample]:
    samples = []
    for _ in range(count):
        account = Account.from_key(rng.randbytes(32))
        to = Account.from_key(rng.randbytes(32)).address
        unsigned = Sample(
            payer=account.address,
            to=to,
            value=rng.randrange(1, 10**12),
            valid_after=0,
            valid_before=rng.randrange(1_700_000_000, 1_900_000_000),
            nonce=rng.randbytes(32),
            signature=b"",
        )
        signed = account.sign_message(encode_typed_data(full_message=unsigned.full_message()))
        samples.append(
            Sample(**{**unsigned.__dict__, "signature": bytes(signed.signature)}),
        )
    return samples


def eth_account_path(sample: Sample) -> str:
    signable = encode_typed_data(full_message=sample.full_message())
    return Account.recover_message(signable, signature=sample.signature)


def fast_path(sample: Sample) -> str:
    separator = domain_separator(DOMAIN["name"], DOMAIN["version"], DOMAIN["chainId"], DOMAIN["verifyingContract"])
    digest = transfer_authorization_digest(
        separator, sample.payer, sample.to, sample.value, sample.valid_after, sample.valid_before, sample.nonce
    )
    return recover_signer(digest, sample.signature)


def fast_path_raw(sample: Sample) -> bytes:
    """(b) without the checksum text: what verify_signature does (it compares raw 20-byte addresses)."""
    separator = domain_separator(DOMAIN["name"], DOMAIN["version"], DOMAIN["chainId"], DOMAIN["verifyingContract"])
    digest = transfer_authorization_digest(
        separator, sample.payer, sample.to, sample.value, sample.valid_after, sample.valid_before, sample.nonce
    )
    return recover_address(digest, sample.signature)


def run(path: Callable[[Sample], str | bytes], samples: list[Sample]) -> float:
    """One pass over ``samples``; returns ops/s. Raises if any recovery is wrong."""
    started = time.perf_counter()
    recovered = [path(sample) for sample in samples]
    elapsed = time.perf_counter() - started
    wrong = sum(
        (checksum_address(address) if isinstance(address, bytes) else address) != sample.payer
        for address, sample in zip(recovered, samples, strict=True)
    )
    if wrong:
        raise SystemExit(f"{path.__name__}: {wrong} wrong recoveries")
    return len(samples) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=402)
    args = parser.parse_args()

    samples = make_samples(args.count, random.Random(args.seed))
    warmup = samples[: min(200, len(samples))]
    run(eth_account_path, warmup)
    run(fast_path, warmup)
    run(fast_path_raw, warmup)

    slow = run(eth_account_path, samples)
    fast = run(fast_path, samples)
    raw = run(fast_path_raw, samples)
    print(f"{args.count} signed EIP-3009 authorizations, single thread")
    print(f"(a)  eth_account encode_typed_data + Account.recover_message : {slow:>9,.0f} ops/s")
    print(f"(b)  cached domain_separator + digest + recover_signer       : {fast:>9,.0f} ops/s")
    print(f"ratio (b)/(a): {fast / slow:.1f}x")
    print(f"(b') as (b) with recover_address (raw bytes, verify's path)  : {raw:>9,.0f} ops/s ({raw / slow:.1f}x)")


if __name__ == "__main__":
    main()
