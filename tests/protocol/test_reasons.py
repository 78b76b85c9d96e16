"""One table of reason codes, spelled like the official Python SDK, documented in docs/reason-codes.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from x402.mechanisms.evm import constants as sdk

from app.protocol import REASON_DESCRIPTIONS, ProtocolError, Reason, reason_table_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "reason-codes.md"

# Our member -> the SDK constant that holds the same situation's code.
SDK_SPELLING = {
    Reason.unsupported_scheme: sdk.ERR_UNSUPPORTED_SCHEME,
    Reason.network_mismatch: sdk.ERR_NETWORK_MISMATCH,
    Reason.missing_eip712_domain: sdk.ERR_MISSING_EIP712_DOMAIN,
    Reason.invalid_exact_evm_failed_to_get_network_config: sdk.ERR_FAILED_TO_GET_NETWORK_CONFIG,
    Reason.invalid_exact_evm_payload_recipient_mismatch: sdk.ERR_RECIPIENT_MISMATCH,
    Reason.invalid_exact_evm_payload_authorization_value_mismatch: sdk.ERR_AUTHORIZATION_VALUE_MISMATCH,
    Reason.invalid_exact_evm_payload_authorization_valid_before: sdk.ERR_VALID_BEFORE_EXPIRED,
    Reason.invalid_exact_evm_payload_authorization_valid_after: sdk.ERR_VALID_AFTER_FUTURE,
    Reason.invalid_exact_evm_payload_signature: sdk.ERR_INVALID_SIGNATURE,
    Reason.invalid_exact_evm_failed_to_verify_signature: sdk.ERR_FAILED_TO_VERIFY_SIGNATURE,
    Reason.invalid_exact_evm_payload_undeployed_smart_wallet: sdk.ERR_UNDEPLOYED_SMART_WALLET,
    Reason.eip6492_factory_not_allowed: sdk.ERR_FACTORY_NOT_ALLOWED,
    Reason.smart_wallet_deployment_failed: sdk.ERR_SMART_WALLET_DEPLOYMENT_FAILED,
    Reason.asset_not_deployed_contract: sdk.ERR_ASSET_NOT_DEPLOYED_CONTRACT,
    Reason.invalid_exact_evm_insufficient_balance: sdk.ERR_INSUFFICIENT_BALANCE,
    Reason.invalid_exact_evm_nonce_already_used: sdk.ERR_NONCE_ALREADY_USED,
    Reason.invalid_exact_evm_token_name_mismatch: sdk.ERR_TOKEN_NAME_MISMATCH,
    Reason.invalid_exact_evm_token_version_mismatch: sdk.ERR_TOKEN_VERSION_MISMATCH,
    Reason.invalid_exact_evm_eip3009_not_supported: sdk.ERR_EIP3009_NOT_SUPPORTED,
    Reason.invalid_exact_evm_transaction_simulation_failed: sdk.ERR_TRANSACTION_SIMULATION_FAILED,
    Reason.transaction_failed: sdk.ERR_TRANSACTION_FAILED,
    Reason.invalid_exact_evm_transfer_event_mismatch: sdk.ERR_TRANSFER_EVENT_MISMATCH,
    Reason.settlement_pending: sdk.ERR_SETTLEMENT_PENDING,
}

# Codes the SDK's constants do not define: the spec's generic codes, then ours.
NOT_IN_SDK = {
    Reason.invalid_network: "invalid_network",
    Reason.invalid_payload: "invalid_payload",
    Reason.invalid_payment_requirements: "invalid_payment_requirements",
    Reason.invalid_x402_version: "invalid_x402_version",
    Reason.unexpected_verify_error: "unexpected_verify_error",
    Reason.unexpected_settle_error: "unexpected_settle_error",
    Reason.asset_mismatch: "invalid_exact_evm_asset_mismatch",
    Reason.payer_is_payee: "payer_is_payee",
    Reason.amount_below_minimum: "amount_below_minimum",
    Reason.gas_budget_exhausted: "gas_budget_exhausted",
    Reason.unauthorized: "unauthorized",
    Reason.request_too_large: "request_too_large",
    Reason.malformed_request: "malformed_request",
}


@pytest.mark.parametrize(("reason", "spelling"), sorted(SDK_SPELLING.items()))
def test_reason_uses_the_sdk_spelling(reason: Reason, spelling: str) -> None:
    assert reason.value == spelling


@pytest.mark.parametrize(("reason", "spelling"), sorted(NOT_IN_SDK.items()))
def test_reason_outside_the_sdk(reason: Reason, spelling: str) -> None:
    assert reason.value == spelling


def test_every_reason_is_accounted_for_once() -> None:
    assert set(SDK_SPELLING) | set(NOT_IN_SDK) == set(Reason)
    assert not set(SDK_SPELLING) & set(NOT_IN_SDK)
    assert len({reason.value for reason in Reason}) == len(Reason)


def test_reasons_are_strings_on_the_wire() -> None:
    assert Reason.invalid_payload == "invalid_payload"
    assert f"{Reason.asset_mismatch}" == "invalid_exact_evm_asset_mismatch"
    assert Reason("settlement_pending") is Reason.settlement_pending


def test_every_reason_has_a_one_line_description() -> None:
    assert set(REASON_DESCRIPTIONS) == set(Reason)
    for reason, text in REASON_DESCRIPTIONS.items():
        assert text.strip(), reason
        assert "\n" not in text and "|" not in text, reason


def test_docs_reason_codes_md_is_generated_from_the_table() -> None:
    expected = reason_table_markdown()
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/reason-codes.md is stale; regenerate it with: .venv/bin/python -c "
        "'from app.protocol import reason_table_markdown as t; print(t(), end=\"\")' > docs/reason-codes.md"
    )


def test_markdown_lists_every_code_in_order() -> None:
    rows = [line for line in reason_table_markdown().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [reason.value for reason in Reason]


def test_protocol_error_carries_reason_and_message() -> None:
    error = ProtocolError(Reason.invalid_payload, "missing field payload.signature")
    assert isinstance(error, ValueError)
    assert error.reason is Reason.invalid_payload
    assert error.message == "missing field payload.signature"
    assert str(error) == "invalid_payload: missing field payload.signature"
