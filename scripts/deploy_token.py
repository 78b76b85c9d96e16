#!/usr/bin/env python3
"""Deploy the dev stablecoin and optionally mint to some addresses; prints the token address.

    X402_DEPLOYER_KEY=0x... scripts/deploy_token.py --rpc-url http://127.0.0.1:8545 --at-usdc \\
        --mint 0xAgent...:1000000000

The key comes from ``X402_DEPLOYER_KEY`` (preferred: a flag lands in shell history and ``ps``) or
``--deployer-key``; it is never printed. ``--at-usdc`` places the token at Base Sepolia's USDC
address and only works on anvil; without it the token is deployed at a fresh address on any chain.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from eth_account import Account
from web3 import Web3

from app.dev.deploy import BASE_SEPOLIA_USDC, deploy_token, mint, place_token_at

KEY_ENV = "X402_DEPLOYER_KEY"


def parse_mint(value: str) -> tuple[str, int]:
    """``ADDRESS:AMOUNT`` with AMOUNT in atomic units (an integer: 1 USDC = 1000000)."""
    address, sep, amount = value.rpartition(":")
    if not sep or not Web3.is_address(address) or not amount.isdigit() or int(amount) <= 0:
        raise argparse.ArgumentTypeError(f"expected ADDRESS:AMOUNT (positive integer atomic units), got {value!r}")
    return Web3.to_checksum_address(address), int(amount)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpc-url", default="http://127.0.0.1:8545", help="JSON-RPC endpoint")
    parser.add_argument("--deployer-key", help=f"deployer private key (prefer the {KEY_ENV} env variable)")
    parser.add_argument("--at-usdc", action="store_true", help=f"place the token at {BASE_SEPOLIA_USDC} (anvil only)")
    parser.add_argument("--name", default="USDC", help="token name, also the EIP-712 domain name")
    parser.add_argument("--symbol", default="USDC")
    parser.add_argument(
        "--mint", action="append", type=parse_mint, default=[], metavar="ADDRESS:AMOUNT", help="repeatable"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    key = os.environ.get(KEY_ENV) or args.deployer_key
    if not key:
        print(f"error: set {KEY_ENV} (or pass --deployer-key)", file=sys.stderr)
        return 2
    try:
        deployer = Account.from_key(key)
    except (ValueError, TypeError):
        print("error: the deployer key is not a valid private key", file=sys.stderr)  # never echo the key
        return 2
    w3 = Web3(Web3.HTTPProvider(args.rpc_url))
    if not w3.is_connected():
        print(f"error: no JSON-RPC node answers at {args.rpc_url}", file=sys.stderr)
        return 1
    if args.at_usdc:
        address = place_token_at(w3, deployer, name=args.name, symbol=args.symbol)
    else:
        address = deploy_token(w3, deployer, name=args.name, symbol=args.symbol)
    for to, amount in args.mint:
        mint(w3, deployer, address, to, amount)
        print(f"minted {amount} to {to}", file=sys.stderr)
    print(address)
    return 0


if __name__ == "__main__":
    sys.exit(main())
