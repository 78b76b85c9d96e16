"""The facilitator's own encoders against the libraries they replace, side by side in one run.

Usage: .venv/bin/python scripts/bench/bench_signing.py [--count 5000] [--seed 402]

- settle: signing the EIP-1559 ``transferWithAuthorization`` transaction: eth-account's
  ``sign_transaction`` vs ``HotWallet`` + our RLP (``app/chain/sender.py``);
- verify/settle: the ``transferWithAuthorization`` calldata: eth-abi's ``encode`` vs ``app/chain/abi.py``.

Both sides get the same random inputs; every output is compared byte for byte before a figure is printed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import eth_abi
from eth_account import Account
from eth_utils import to_checksum_address

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere: app/ importable

from app.chain import abi
from app.chain.keys import HotWallet
from app.chain.sender import sign_transaction

CHAIN_ID = 84532
TOKEN = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
AUTHORIZATION_TYPES = ["address", "address", "uint256", "uint256", "uint256", "bytes32", "uint8", "bytes32", "bytes32"]


def random_authorization(rng: random.Random) -> list[Any]:
    return [to_checksum_address(rng.randbytes(20)), to_checksum_address(rng.randbytes(20)), rng.randrange(10**12), 0,
            rng.randrange(2**40), rng.randbytes(32), 27 + rng.randrange(2), rng.randbytes(32), rng.randbytes(32)]


def random_transaction(rng: random.Random) -> dict[str, Any]:
    calldata = bytes(4) + abi.encode(AUTHORIZATION_TYPES, random_authorization(rng))
    return {"nonce": rng.randrange(10**6), "data": calldata, "gas": 200_000,
            "max_fee": rng.randrange(10**8, 10**11), "tip": rng.randrange(10**9)}


def timed(label: str, work: Callable[[Any], bytes], inputs: Sequence[Any]) -> tuple[float, list[bytes]]:
    for item in inputs[:200]:  # warm-up: caches, lazy imports
        work(item)
    started = time.perf_counter()
    outputs = [work(item) for item in inputs]
    rate = len(inputs) / (time.perf_counter() - started)
    print(f"  {label:<58}: {rate:>10,.0f} ops/s")
    return rate, outputs


def compare(name: str, theirs: tuple[float, list[bytes]], ours: tuple[float, list[bytes]]) -> None:
    if theirs[1] != ours[1]:
        raise SystemExit(f"{name}: outputs differ; no figure is valid")
    print(f"  ratio: {ours[0] / theirs[0]:.1f}x, outputs identical\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=402)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    key = rng.randbytes(32)
    account, wallet = Account.from_key(key), HotWallet.from_key(key)

    transactions = [random_transaction(rng) for _ in range(args.count)]
    print(f"{args.count} EIP-1559 settlement transactions, single thread")
    compare("signing", timed("eth-account Account.sign_transaction", lambda tx: bytes(account.sign_transaction({
        "type": 2, "chainId": CHAIN_ID, "nonce": tx["nonce"], "to": TOKEN, "value": 0, "data": tx["data"],
        "gas": tx["gas"], "maxFeePerGas": tx["max_fee"], "maxPriorityFeePerGas": tx["tip"]}).raw_transaction),
        transactions), timed("HotWallet + app.chain.rlp (sender.sign_transaction)", lambda tx: sign_transaction(
            wallet, chain_id=CHAIN_ID, nonce=tx["nonce"], to=TOKEN, data=tx["data"], gas=tx["gas"],
            max_fee_per_gas=tx["max_fee"], max_priority_fee_per_gas=tx["tip"]).raw, transactions))

    authorizations = [random_authorization(rng) for _ in range(args.count)]
    print(f"{args.count} transferWithAuthorization argument lists, single thread")
    compare("calldata",
            timed("eth_abi.encode", lambda args_: eth_abi.encode(AUTHORIZATION_TYPES, args_), authorizations),
            timed("app.chain.abi.encode", lambda args_: abi.encode(AUTHORIZATION_TYPES, args_), authorizations))


if __name__ == "__main__":
    main()
