"""Compiled contract artifacts (ABI, bytecode, storage layout) committed in ``contracts_abi/``.

The JSON files are produced by ``node contracts_abi/compile.js`` and checked against the sources by
a test, so Python never needs a Solidity compiler at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from app.dev.devchain import PROJECT_ROOT

ARTIFACTS_DIR = PROJECT_ROOT / "contracts_abi"


class ArtifactError(RuntimeError):
    """An artifact is missing or malformed; the message names the file and the fix."""


@dataclass(frozen=True)
class StorageSlot:
    """One state variable from solc's storageLayout, enough to copy it between addresses."""

    label: str
    slot: int
    offset: int
    type_id: str
    encoding: str  # "inplace", "bytes" (string/bytes), "mapping" or "dynamic_array"
    number_of_bytes: int


@dataclass(frozen=True)
class ContractArtifact:
    """A compiled contract as written by compile.js."""

    contract_name: str
    compiler: str
    source_sha256: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    storage_layout: dict[str, Any]

    @property
    def storage_slots(self) -> tuple[StorageSlot, ...]:
        types = self.storage_layout.get("types") or {}
        return tuple(
            StorageSlot(
                label=entry["label"],
                slot=int(entry["slot"]),
                offset=int(entry["offset"]),
                type_id=entry["type"],
                encoding=types[entry["type"]]["encoding"],
                number_of_bytes=int(types[entry["type"]]["numberOfBytes"]),
            )
            for entry in self.storage_layout.get("storage", [])
        )


def artifact_path(name: str) -> Path:
    return ARTIFACTS_DIR / f"{name}.json"


@cache
def load_artifact(name: str) -> ContractArtifact:
    """Load ``contracts_abi/<name>.json`` once per process (artifacts only change with a recompile)."""
    path = artifact_path(name)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path} not found; run: node contracts_abi/compile.js") from exc
    try:
        return ContractArtifact(
            contract_name=raw["contractName"],
            compiler=raw["compiler"],
            source_sha256=raw["sourceSha256"],
            abi=raw["abi"],
            bytecode=raw["bytecode"],
            deployed_bytecode=raw["deployedBytecode"],
            storage_layout=raw["storageLayout"],
        )
    except KeyError as exc:
        raise ArtifactError(f"{path} lacks field {exc}; regenerate with: node contracts_abi/compile.js") from exc
