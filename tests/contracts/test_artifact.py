"""The committed contract artifacts are exactly what the committed sources compile to."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from app.dev.contracts import ARTIFACTS_DIR, load_artifact
from app.dev.devchain import PROJECT_ROOT

CONTRACTS = {"StableCoin": "StableCoin.sol", "SmartWallet": "SmartWallet.sol"}


def test_committed_artifacts_match_a_fresh_compile() -> None:
    node = shutil.which("node")
    assert node, "node is required to check the contract artifacts (scripts/bootstrap installs it)"
    result = subprocess.run(
        [node, "contracts_abi/compile.js", "--check"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"stale artifacts:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize(("name", "source"), sorted(CONTRACTS.items()))
def test_artifact_records_the_hash_of_its_source(name: str, source: str) -> None:
    expected = hashlib.sha256((ARTIFACTS_DIR / source).read_bytes()).hexdigest()
    assert load_artifact(name).source_sha256 == expected


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_artifact_has_abi_and_both_bytecodes(name: str) -> None:
    artifact = load_artifact(name)
    assert artifact.contract_name == name
    assert artifact.compiler.startswith("0.8.")
    assert artifact.abi
    assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 2
    assert artifact.deployed_bytecode.startswith("0x") and len(artifact.deployed_bytecode) > 2


def test_stablecoin_keeps_its_simple_state_before_every_mapping() -> None:
    """place_token_at clones non-mapping slots by number; they must come first and be plain."""
    slots = load_artifact("StableCoin").storage_slots
    encodings = [slot.encoding for slot in slots]
    first_mapping = encodings.index("mapping")
    assert [slot.label for slot in slots[:first_mapping]] == ["name", "symbol", "minter", "totalSupply"]
    assert set(encodings[first_mapping:]) == {"mapping"}
