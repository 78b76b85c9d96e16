"""Who signed an EIP-712 digest: EOA recovery (coincurve, no eth_account), EIP-1271 and ERC-6492.

Routing follows the reference facilitator and on-chain ``SignatureChecker``: an address with code (a
contract wallet or an EIP-7702 delegated EOA) is asked through EIP-1271 with no ECDSA fallback; an
address without code must have signed with its key, unless the signature carries ERC-6492 deployment
data, which cannot be checked before the wallet exists and is only accepted from allow-listed factories.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache

from coincurve import PublicKey

from app.chain.abi import decode, encode
from app.chain.eip712 import address_bytes, keccak256
from app.chain.rpc import RpcClient, RpcError

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2

ERC6492_MAGIC = bytes.fromhex("6492" * 16)
ERC1271_MAGIC_VALUE = bytes.fromhex("1626ba7e")
IS_VALID_SIGNATURE_SELECTOR = keccak256(b"isValidSignature(bytes32,bytes)")[:4]


class SignatureError(ValueError):
    """A signature that cannot be valid for any signer; ``reason`` is a short text, ``kind`` a stable tag."""

    def __init__(self, reason: str, *, kind: str = "malformed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "length", "v", "r", "s", "high_s", "recovery", "malformed"


@lru_cache(maxsize=65_536)
def checksum_address(raw: bytes) -> str:
    """EIP-55 mixed-case text of a 20-byte address (cached: payers and tokens repeat)."""
    lower = raw.hex()
    hashed = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        char.upper() if char > "9" and hashed[index] > "7" else char for index, char in enumerate(lower)
    )


def to_checksum(address: str | bytes) -> str:
    return checksum_address(address_bytes(address))


def split_signature(signature: bytes) -> tuple[int, int, int]:
    """(r, s, v) of a 65-byte r‖s‖v signature, v normalised to 27/28; rejects what ecrecover would not
    accept from USDC (EIP-2 high-s, v outside {0, 1, 27, 28}, r or s out of range)."""
    if len(signature) != 65:
        raise SignatureError(f"ECDSA signature must be 65 bytes, got {len(signature)}", kind="length")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v in (0, 1):
        v += 27
    elif v not in (27, 28):
        raise SignatureError(f"invalid recovery id v={signature[64]}", kind="v")
    if not 0 < r < SECP256K1_N:
        raise SignatureError("r out of range", kind="r")
    if s == 0 or s >= SECP256K1_N:
        raise SignatureError("s out of range", kind="s")
    if s > SECP256K1_HALF_N:
        raise SignatureError("high-s signature (EIP-2 malleability)", kind="high_s")
    return r, s, v


def recover_address(digest: bytes, signature: bytes) -> bytes:
    """The raw 20-byte address whose key made ``signature`` over ``digest`` (no checksum text: this is
    what a comparison needs). Raises SignatureError like ``recover_signer``."""
    if len(digest) != 32:
        raise SignatureError(f"digest must be 32 bytes, got {len(digest)}", kind="malformed")
    _, _, v = split_signature(signature)
    try:
        public_key = PublicKey.from_signature_and_message(signature[:64] + bytes((v - 27,)), digest, hasher=None)
    except Exception as exc:  # coincurve raises ValueError, but be strict about any failure
        raise SignatureError("public key recovery failed", kind="recovery") from exc
    return address_of(public_key)


def address_of(public_key: PublicKey) -> bytes:
    """The raw 20-byte address of a secp256k1 public key: the last 20 bytes of keccak(x ‖ y)."""
    return keccak256(public_key.format(compressed=False)[1:])[-20:]


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address whose key made the 65-byte ``signature`` over the 32-byte ``digest``."""
    return checksum_address(recover_address(digest, signature))


# ---------------------------------------------------------------------------------------- ERC-6492


def unwrap_erc6492(signature: bytes) -> tuple[str, bytes, bytes] | None:
    """(factory, factoryCalldata, innerSignature) of an ERC-6492 wrapped signature, None if not wrapped.

    Raises SignatureError when the magic suffix is present but the prefix is not ``abi.encode(address,
    bytes, bytes)``.
    """
    if len(signature) < 32 or signature[-32:] != ERC6492_MAGIC:
        return None
    try:
        factory, factory_calldata, inner = decode(["address", "bytes", "bytes"], signature[:-32])
    except Exception as exc:
        raise SignatureError("malformed ERC-6492 wrapper", kind="malformed") from exc
    return to_checksum(factory), bytes(factory_calldata), bytes(inner)


def wrap_erc6492(factory: str, factory_calldata: bytes, signature: bytes) -> bytes:
    """The ERC-6492 wrapper of ``signature`` (what a counterfactual wallet's client sends)."""
    return encode(["address", "bytes", "bytes"], [to_checksum(factory), factory_calldata, signature]) + ERC6492_MAGIC


# ------------------------------------------------------------------------------------ verification


class SignatureStatus(enum.Enum):
    VALID = "valid"
    INVALID = "invalid_signature"
    HIGH_S = "high_s"  # invalid: a malleable twin of a valid signature
    FACTORY_NOT_ALLOWED = "eip6492_factory_not_allowed"
    DEFERRED = "undeployed_smart_wallet"  # 6492 from an allowed factory: checked only after deployment


@dataclass(frozen=True)
class SignatureCheck:
    status: SignatureStatus
    reason: str = ""
    # "eoa", "eip1271" or "eip6492": which path decided
    method: str = "eoa"
    # (factory, factoryCalldata, innerSignature) when the signature was ERC-6492 wrapped
    erc6492: tuple[str, bytes, bytes] | None = None

    @property
    def accepted(self) -> bool:
        """True when verification may proceed (valid now, or deferred to deployment)."""
        return self.status in (SignatureStatus.VALID, SignatureStatus.DEFERRED)

    @property
    def is_valid(self) -> bool:
        return self.status is SignatureStatus.VALID


def has_code(code: str | None) -> bool:
    return bool(code) and code not in ("0x", "0x0")


async def is_valid_erc1271(rpc: RpcClient, wallet: str, digest: bytes, signature: bytes, block: str = "latest") -> bool:
    """Strict EIP-1271: ``isValidSignature(digest, signature)`` must return the magic 0x1626ba7e."""
    data = IS_VALID_SIGNATURE_SELECTOR + encode(["bytes32", "bytes"], [digest, signature])
    try:
        result = await rpc.call("eth_call", [{"to": to_checksum(wallet), "data": "0x" + data.hex()}, block])
    except RpcError:
        return False  # reverted: not a valid signature (an unreachable node raises RpcUnavailable instead)
    raw = bytes.fromhex(str(result)[2:]) if isinstance(result, str) and result.startswith("0x") else b""
    return len(raw) >= 32 and raw[:4] == ERC1271_MAGIC_VALUE and raw[4:32] == b"\x00" * 28


async def verify_signature(
    rpc: RpcClient,
    signer: str,
    digest: bytes,
    signature: bytes,
    *,
    signer_code: str | None = None,
    allowed_6492_factories: frozenset[str] = frozenset(),
) -> SignatureCheck:
    """Does ``signature`` prove that ``signer`` authorized ``digest``? Routed by the signer's code.

    ``signer_code`` avoids an ``eth_getCode`` when the caller already read it (e.g. with
    ``read_payment_state``). ``allowed_6492_factories`` is compared case-insensitively; empty denies all.
    """
    try:
        wrapped = unwrap_erc6492(signature)
    except SignatureError as exc:
        return SignatureCheck(SignatureStatus.INVALID, exc.reason, method="eip6492")
    inner = wrapped[2] if wrapped else signature
    if signer_code is None:
        signer_code = await rpc.call("eth_getCode", [to_checksum(signer), "latest"])

    if has_code(signer_code):
        if await is_valid_erc1271(rpc, signer, digest, inner):
            return SignatureCheck(SignatureStatus.VALID, method="eip1271", erc6492=wrapped)
        return SignatureCheck(
            SignatureStatus.INVALID, "smart wallet rejected the signature (EIP-1271)", method="eip1271", erc6492=wrapped
        )

    if wrapped is not None:
        factory = wrapped[0]
        allowed = {f.lower() for f in allowed_6492_factories}
        if factory.lower() not in allowed:
            return SignatureCheck(
                SignatureStatus.FACTORY_NOT_ALLOWED, f"ERC-6492 factory {factory} is not allowed", "eip6492", wrapped
            )
        return SignatureCheck(
            SignatureStatus.DEFERRED, "smart wallet not deployed yet: checked on deployment", "eip6492", wrapped
        )

    if len(signature) != 65:
        return SignatureCheck(SignatureStatus.INVALID, f"EOA signature must be 65 bytes, got {len(signature)}")
    try:
        recovered = recover_address(digest, signature)
    except SignatureError as exc:
        status = SignatureStatus.HIGH_S if exc.kind == "high_s" else SignatureStatus.INVALID
        return SignatureCheck(status, exc.reason)
    if recovered != address_bytes(signer):
        return SignatureCheck(SignatureStatus.INVALID, "signature was made by another key")
    return SignatureCheck(SignatureStatus.VALID)
