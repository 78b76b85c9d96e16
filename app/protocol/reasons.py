"""The one table of x402 reason codes this service emits.

The strings follow the official Python SDK (``x402`` 2.25, ``x402/mechanisms/evm/constants.py``) where
it has a code for the situation, so a Python resource server sees the codes it already knows. Codes the
SDK does not define come from the x402 v2 spec (§9) or are our own (described as "ours").

``docs/reason-codes.md`` is generated from :data:`REASON_DESCRIPTIONS` by :func:`reason_table_markdown`;
a test keeps the two identical. Regenerate with
``python -c 'from app.protocol import reason_table_markdown as t; print(t(), end="")' > docs/reason-codes.md``.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """An x402 ``invalidReason`` / ``errorReason`` code. The value is the wire string."""

    # Scheme, network, requirements (verify step 1-4)
    unsupported_scheme = "unsupported_scheme"
    network_mismatch = "network_mismatch"
    invalid_network = "invalid_network"
    missing_eip712_domain = "missing_eip712_domain"
    invalid_exact_evm_failed_to_get_network_config = "invalid_exact_evm_failed_to_get_network_config"
    asset_mismatch = "invalid_exact_evm_asset_mismatch"

    # Authorization fields against the requirements
    invalid_exact_evm_payload_recipient_mismatch = "invalid_exact_evm_payload_recipient_mismatch"
    invalid_exact_evm_payload_authorization_value_mismatch = "invalid_exact_evm_payload_authorization_value_mismatch"
    invalid_exact_evm_payload_authorization_valid_before = "invalid_exact_evm_payload_authorization_valid_before"
    invalid_exact_evm_payload_authorization_valid_after = "invalid_exact_evm_payload_authorization_valid_after"

    # Signature
    invalid_exact_evm_payload_signature = "invalid_exact_evm_payload_signature"
    invalid_exact_evm_failed_to_verify_signature = "invalid_exact_evm_failed_to_verify_signature"
    invalid_exact_evm_payload_undeployed_smart_wallet = "invalid_exact_evm_payload_undeployed_smart_wallet"
    eip6492_factory_not_allowed = "eip6492_factory_not_allowed"
    smart_wallet_deployment_failed = "smart_wallet_deployment_failed"

    # Token and chain state
    asset_not_deployed_contract = "asset_not_deployed_contract"
    invalid_exact_evm_insufficient_balance = "invalid_exact_evm_insufficient_balance"
    invalid_exact_evm_nonce_already_used = "invalid_exact_evm_nonce_already_used"
    invalid_exact_evm_token_name_mismatch = "invalid_exact_evm_token_name_mismatch"
    invalid_exact_evm_token_version_mismatch = "invalid_exact_evm_token_version_mismatch"
    invalid_exact_evm_eip3009_not_supported = "invalid_exact_evm_eip3009_not_supported"
    invalid_exact_evm_transaction_simulation_failed = "invalid_exact_evm_transaction_simulation_failed"

    # Settlement
    transaction_failed = "transaction_failed"
    invalid_exact_evm_transfer_event_mismatch = "invalid_exact_evm_transfer_event_mismatch"
    settlement_pending = "settlement_pending"

    # Generic (spec v2 §9)
    invalid_payload = "invalid_payload"
    invalid_payment_requirements = "invalid_payment_requirements"
    invalid_x402_version = "invalid_x402_version"
    unexpected_verify_error = "unexpected_verify_error"
    unexpected_settle_error = "unexpected_settle_error"

    # Ours: what this facilitator refuses to pay gas for
    payer_is_payee = "payer_is_payee"
    amount_below_minimum = "amount_below_minimum"
    gas_budget_exhausted = "gas_budget_exhausted"

    # Ours: transport-level refusals of the facilitator API
    unauthorized = "unauthorized"
    request_too_large = "request_too_large"
    malformed_request = "malformed_request"


REASON_DESCRIPTIONS: dict[Reason, str] = {
    Reason.unsupported_scheme: "The payment's scheme is not one this facilitator settles (only `exact`).",
    Reason.network_mismatch: "The payload's network differs from the requirements' network.",
    Reason.invalid_network: "The network is unknown or not enabled on this facilitator.",
    Reason.missing_eip712_domain: "The requirements' `extra` lacks the EIP-712 domain `name` or `version`.",
    Reason.invalid_exact_evm_failed_to_get_network_config: (
        "The network is not a well-formed `eip155:<chainId>` identifier, or has no chain configuration."
    ),
    Reason.asset_mismatch: "The payload's asset differs from the requirements' asset (ours).",
    Reason.invalid_exact_evm_payload_recipient_mismatch: "The authorization's `to` is not the requirements' `payTo`.",
    Reason.invalid_exact_evm_payload_authorization_value_mismatch: (
        "The authorization's `value` is not the required amount."
    ),
    Reason.invalid_exact_evm_payload_authorization_valid_before: (
        "The authorization has expired or expires too soon (`validBefore`)."
    ),
    Reason.invalid_exact_evm_payload_authorization_valid_after: "The authorization is not yet valid (`validAfter`).",
    Reason.invalid_exact_evm_payload_signature: "The signature does not verify for the payer under the token's domain.",
    Reason.invalid_exact_evm_failed_to_verify_signature: "The signature check itself failed (e.g. a reverting wallet).",
    Reason.invalid_exact_evm_payload_undeployed_smart_wallet: (
        "The payer is an undeployed smart wallet and the signature carries no ERC-6492 deployment data."
    ),
    Reason.eip6492_factory_not_allowed: "The ERC-6492 wallet factory is not on this facilitator's allowlist.",
    Reason.smart_wallet_deployment_failed: "Deploying the payer's ERC-6492 smart wallet failed.",
    Reason.asset_not_deployed_contract: "The asset address has no contract code on this network.",
    Reason.invalid_exact_evm_insufficient_balance: "The payer's token balance is below the amount.",
    Reason.invalid_exact_evm_nonce_already_used: "The authorization nonce has already been used or cancelled on-chain.",
    Reason.invalid_exact_evm_token_name_mismatch: "The token's `name()` differs from the requirements' `extra.name`.",
    Reason.invalid_exact_evm_token_version_mismatch: (
        "The token's `version()` differs from the requirements' `extra.version`."
    ),
    Reason.invalid_exact_evm_eip3009_not_supported: (
        "The token does not implement EIP-3009 `transferWithAuthorization`."
    ),
    Reason.invalid_exact_evm_transaction_simulation_failed: "Simulating the transfer reverted for another reason.",
    Reason.transaction_failed: "The settlement transaction reverted or was dropped.",
    Reason.invalid_exact_evm_transfer_event_mismatch: "The mined receipt lacks the expected `Transfer` event.",
    Reason.settlement_pending: (
        "The transaction was broadcast but its receipt is not known yet; the response carries the hash."
    ),
    Reason.invalid_payload: "The payment payload is malformed (encoding, JSON, missing or ill-typed fields).",
    Reason.invalid_payment_requirements: "The payment requirements are malformed or of the wrong protocol version.",
    Reason.invalid_x402_version: "The `x402Version` is not 1 or 2, or the request's versions disagree.",
    Reason.unexpected_verify_error: "An internal error occurred while verifying.",
    Reason.unexpected_settle_error: "An internal error occurred while settling.",
    Reason.payer_is_payee: "The authorization pays its own payer: nothing moves but gas (ours).",
    Reason.amount_below_minimum: "The amount is below this facilitator's floor for the asset (ours).",
    Reason.gas_budget_exhausted: (
        "The hot wallet's gas budget for this network and hour is spent; retry later (ours)."
    ),
    Reason.unauthorized: "The facilitator API call lacks valid credentials (ours).",
    Reason.request_too_large: "The request body or payment header exceeds the size limit (ours).",
    Reason.malformed_request: "The request body is not a JSON object of the expected shape (ours).",
}


def reason_table_markdown() -> str:
    """Render the reason table as the Markdown document ``docs/reason-codes.md``."""
    lines = [
        "# Reason codes",
        "",
        "<!-- Generated by reason_table_markdown() in app/protocol/reasons.py; do not edit by hand. -->",
        "",
        "The `invalidReason` of a `/verify` answer and the `errorReason` of a `/settle` answer or a",
        "`PAYMENT-RESPONSE` header. Strings follow the official Python SDK (`x402` 2.25) where it has one;",
        "clients should treat them as opaque.",
        "",
        "| Code | Meaning |",
        "|---|---|",
    ]
    lines += [f"| `{reason.value}` | {REASON_DESCRIPTIONS[reason]} |" for reason in Reason]
    return "\n".join(lines) + "\n"
