"""The checks of an EVM ``exact`` (EIP-3009) payment, cheapest first.

``prepare_payment`` runs every check that needs no I/O (scheme, network, domain, recipient,
amount, time window) and the EOA signature fast path, once per request: the prepared payment is
what verify and settle work on, so a signature is recovered once however many steps follow.
``check_time_window`` is re-run wherever time has passed since (a gateway settles after its handler
ran). ``check_on_chain`` then reads the chain in one batched round trip (balance, nonce state, payer
and token code, a simulation of the transfer) and judges the results in the documented order:
signature, asset, nonce, balance, simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.chain import eip3009
from app.chain.eip712 import domain_separator, transfer_authorization_digest
from app.chain.rpc import RpcClient
from app.chain.signatures import (
    SignatureError,
    SignatureStatus,
    recover_signer,
    to_checksum,
    unwrap_erc6492,
    verify_signature,
)
from app.config import AssetConfig, NetworkConfig
from app.protocol import (
    AnyPaymentPayload,
    AnyPaymentRequirements,
    Authorization,
    FacilitatorRequest,
    PaymentPayload,
    PaymentRequirementsV1,
    ProtocolError,
    Reason,
    payload_network,
    payload_scheme,
    requirement_amount,
    requirement_network,
)

EXACT = "exact"
VALID_BEFORE_MARGIN_SECONDS = 6  # time for the settlement to be mined before the authorization expires


class PaymentInvalid(Exception):
    """The payment cannot be accepted; ``reason`` is the x402 code returned to the caller."""

    def __init__(self, reason: Reason, message: str, payer: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.payer = payer


@dataclass(frozen=True)
class PreparedPayment:
    """A payment that passed every I/O-free check; what the chain checks and the settlement need."""

    request: FacilitatorRequest
    network: NetworkConfig
    asset: AssetConfig
    authorization: Authorization
    payer: str  # checksummed
    payee: str  # checksummed
    digest: bytes
    eoa_signature_valid: bool  # the fast path recovered the payer: no EIP-1271 call needed

    @property
    def x402_version(self) -> int:
        return self.request.x402_version

    @property
    def resource_url(self) -> str | None:
        """The resource paid for: v1 requirements name it, v2 payloads carry it."""
        requirements, payload = self.request.requirements, self.request.payload
        if isinstance(requirements, PaymentRequirementsV1):
            return requirements.resource
        if isinstance(payload, PaymentPayload) and payload.resource is not None:
            return payload.resource.url
        return None

    @property
    def capability_hint(self) -> str | None:
        """The capability id our gateway puts in ``extra``, if the requirements carry one."""
        hint = (self.request.requirements.extra or {}).get("capabilityId")
        return hint if isinstance(hint, str) else None

    @property
    def calldata(self) -> bytes:
        auth = self.authorization
        return eip3009.transfer_with_authorization_calldata(
            auth.payer, auth.to, auth.value, auth.valid_after, auth.valid_before, auth.nonce, auth.signature
        )


def prepare_payment(request: FacilitatorRequest, networks: dict[str, NetworkConfig], now: int) -> PreparedPayment:
    """Every check that needs no I/O, in the order of the reference facilitator."""
    payload, requirements = request.payload, request.requirements
    if payload_scheme(payload) != EXACT or requirements.scheme != EXACT:
        raise PaymentInvalid(Reason.unsupported_scheme, f"only the '{EXACT}' scheme is supported")
    network_id = _network_of(requirements)
    if _payload_network_of(payload) != network_id:
        raise PaymentInvalid(Reason.network_mismatch, "the payment's network differs from the requirements'")
    network = networks.get(network_id)
    if network is None:
        raise PaymentInvalid(Reason.invalid_network, f"network {network_id} is not enabled on this facilitator")
    if isinstance(payload, PaymentPayload) and payload.accepted.asset.lower() != requirements.asset.lower():
        raise PaymentInvalid(Reason.asset_mismatch, "the accepted asset differs from the requirements' asset")
    asset = _asset_of(network, requirements.asset)
    extra = requirements.extra or {}
    name, version = extra.get("name"), extra.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise PaymentInvalid(Reason.missing_eip712_domain, "requirements.extra must carry the EIP-712 name and version")
    if name != asset.name:
        raise PaymentInvalid(
            Reason.invalid_exact_evm_token_name_mismatch, f"the token's EIP-712 name is {asset.name!r}, not {name!r}"
        )
    if version != asset.version:
        raise PaymentInvalid(
            Reason.invalid_exact_evm_token_version_mismatch,
            f"the token's EIP-712 version is {asset.version!r}, not {version!r}",
        )
    try:
        auth = request.authorization
    except ProtocolError as error:
        raise PaymentInvalid(error.reason, error.message) from None
    payer = to_checksum(auth.payer)
    if auth.to.lower() != requirements.pay_to.lower():
        raise PaymentInvalid(
            Reason.invalid_exact_evm_payload_recipient_mismatch, "authorization.to is not the requirements' payTo",
            payer,
        )
    if str(auth.value) != _amount_of(requirements):
        raise PaymentInvalid(
            Reason.invalid_exact_evm_payload_authorization_value_mismatch,
            f"authorization.value {auth.value} differs from the required amount {requirement_amount(requirements)}",
            payer,
        )
    if payer.lower() == auth.to.lower():
        raise PaymentInvalid(Reason.payer_is_payee, "the payer and the payee are the same address: nothing would "
                             "move but the gas this facilitator pays", payer)
    if auth.value < asset.min_amount:
        raise PaymentInvalid(
            Reason.amount_below_minimum,
            f"{auth.value} atomic units is below this facilitator's floor of {asset.min_amount} for "
            f"{asset.symbol} on {network.network}",
            payer,
        )
    check_time_window(auth, payer, now)
    try:
        unwrap_erc6492(auth.signature)  # a broken wrapper is refused here, before any chain call
    except SignatureError as error:
        raise PaymentInvalid(Reason.invalid_exact_evm_payload_signature, error.reason, payer) from None
    separator = domain_separator(asset.name, asset.version, network.chain_id, asset.address)
    digest = transfer_authorization_digest(
        separator, auth.payer, auth.to, auth.value, auth.valid_after, auth.valid_before, auth.nonce
    )
    return PreparedPayment(
        request=request,
        network=network,
        asset=asset,
        authorization=auth,
        payer=payer,
        payee=to_checksum(auth.to),
        digest=digest,
        eoa_signature_valid=_recovers_to(digest, auth.signature, payer),
    )


def check_time_window(auth: Authorization, payer: str, now: int) -> None:
    """The authorization is valid now and for long enough to be mined (``VALID_BEFORE_MARGIN_SECONDS``)."""
    if auth.valid_before < now + VALID_BEFORE_MARGIN_SECONDS:
        raise PaymentInvalid(
            Reason.invalid_exact_evm_payload_authorization_valid_before,
            f"the authorization expires at {auth.valid_before}, less than {VALID_BEFORE_MARGIN_SECONDS} s from now",
            payer,
        )
    if auth.valid_after > now:
        raise PaymentInvalid(
            Reason.invalid_exact_evm_payload_authorization_valid_after,
            f"the authorization is not valid before {auth.valid_after}",
            payer,
        )


async def check_on_chain(payment: PreparedPayment, rpc: RpcClient, sender: str) -> None:
    """Signature (by code), asset code, nonce state, balance and a simulation; raises PaymentInvalid."""
    auth = payment.authorization
    inspection = await eip3009.inspect_transfer(
        rpc, payment.asset.address, auth.payer, auth.nonce, payment.calldata, sender=sender
    )
    state = inspection.state
    if not payment.eoa_signature_valid:
        check = await verify_signature(rpc, payment.payer, payment.digest, auth.signature, signer_code=state.payer_code)
        if check.status is SignatureStatus.FACTORY_NOT_ALLOWED:
            raise PaymentInvalid(Reason.eip6492_factory_not_allowed, check.reason, payment.payer)
        if check.status is SignatureStatus.DEFERRED:
            raise PaymentInvalid(
                Reason.invalid_exact_evm_payload_undeployed_smart_wallet,
                "counterfactual (ERC-6492) wallets must be deployed before they pay",
                payment.payer,
            )
        if not check.is_valid:
            raise PaymentInvalid(
                Reason.invalid_exact_evm_payload_signature, check.reason or "invalid signature", payment.payer
            )
    if not state.token_has_code:
        raise PaymentInvalid(
            Reason.asset_not_deployed_contract, f"no contract at {payment.asset.address}", payment.payer
        )
    if state.authorization_used:
        raise PaymentInvalid(
            Reason.invalid_exact_evm_nonce_already_used, "the authorization is already used or canceled", payment.payer
        )
    if state.balance < auth.value:
        raise PaymentInvalid(
            Reason.invalid_exact_evm_insufficient_balance,
            f"the payer holds {state.balance} atomic units, {auth.value} required",
            payment.payer,
        )
    if inspection.revert_reason is not None:
        raise PaymentInvalid(
            Reason(eip3009.revert_reason_code(inspection.revert_reason)),
            f"simulation reverted: {inspection.revert_reason}",
            payment.payer,
        )


def _recovers_to(digest: bytes, signature: bytes, payer: str) -> bool:
    if len(signature) != 65:
        return False
    try:
        return recover_signer(digest, signature) == payer
    except SignatureError:
        return False


def _network_of(requirements: AnyPaymentRequirements) -> str:
    try:
        return requirement_network(requirements)
    except ProtocolError as error:
        raise PaymentInvalid(Reason.invalid_network, error.message) from None


def _payload_network_of(payload: AnyPaymentPayload) -> str:
    try:
        return payload_network(payload)
    except ProtocolError as error:
        raise PaymentInvalid(Reason.network_mismatch, error.message) from None


def _asset_of(network: NetworkConfig, address: str) -> AssetConfig:
    for asset in network.assets:
        if asset.address.lower() == address.lower():
            return asset
    raise PaymentInvalid(Reason.asset_mismatch, f"asset {address} is not a supported token on {network.network}")


def _amount_of(requirements: AnyPaymentRequirements) -> str:
    amount = requirement_amount(requirements)
    if not amount.isdigit():
        raise PaymentInvalid(Reason.invalid_payment_requirements, f"the required amount {amount!r} is not an integer")
    return str(int(amount))
