"""Settlement rows, signer nonces and the journal lines booked when a settlement is confirmed.

The natural key ``(network, asset, payer, nonce)`` is unique, so two requests, threads or
replicas can never both own one authorization; the state machine below says who may move it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db.clock import utc_now
from app.db.types import Uint256, UtcDateTime


class SettlementState(StrEnum):
    VERIFIED = "verified"  # recorded, nothing broadcast yet: the owner may sign and send
    SUBMITTED = "submitted"  # signed tx (hash + raw bytes) stored; broadcast or about to be
    CONFIRMED = "confirmed"  # receipt status 1 with the expected Transfer event
    FINALIZED = "finalized"  # past the network's finality depth
    FAILED = "failed"  # the transaction reverted or could never be sent
    EXPIRED = "expired"  # authorization window passed before it could be sent


TERMINAL_STATES = frozenset({SettlementState.CONFIRMED, SettlementState.FINALIZED, SettlementState.FAILED,
                             SettlementState.EXPIRED})
SUCCESS_STATES = frozenset({SettlementState.CONFIRMED, SettlementState.FINALIZED})


class Transition(StrEnum):
    """The named moves of a settlement; each is one conditional UPDATE from its source states."""

    SUBMIT = "submit"  # verified -> submitted: the signed transaction (hash, raw bytes) is stored before broadcast
    CONFIRM = "confirm"  # submitted -> confirmed: a receipt with the expected Transfer; books the journal lines
    FAIL = "fail"  # verified | submitted -> failed: could never be sent, refused, or reverted
    EXPIRE = "expire"  # verified -> expired: the authorization's window passed before it could be sent
    FINALIZE = "finalize"  # confirmed -> finalized: the chain's finalized block covers it
    REVERSE = "reverse"  # confirmed | finalized -> failed: undone, with a reversing line for each journal line


_VERIFIED, _SUBMITTED = SettlementState.VERIFIED, SettlementState.SUBMITTED
_CONFIRMED, _FINALIZED = SettlementState.CONFIRMED, SettlementState.FINALIZED
TRANSITIONS: dict[Transition, tuple[frozenset[SettlementState], SettlementState]] = {
    Transition.SUBMIT: (frozenset({_VERIFIED}), _SUBMITTED),
    Transition.CONFIRM: (frozenset({_SUBMITTED}), _CONFIRMED),
    Transition.FAIL: (frozenset({_VERIFIED, _SUBMITTED}), SettlementState.FAILED),
    Transition.EXPIRE: (frozenset({_VERIFIED}), SettlementState.EXPIRED),
    Transition.FINALIZE: (frozenset({_CONFIRMED}), _FINALIZED),
    Transition.REVERSE: (frozenset({_CONFIRMED, _FINALIZED}), SettlementState.FAILED),
}

# The timestamp column each target state stamps when a row moves into it.
STATE_STAMPS: dict[SettlementState, str] = {
    SettlementState.SUBMITTED: "submitted_at",
    SettlementState.CONFIRMED: "confirmed_at",
    SettlementState.FINALIZED: "finalized_at",
    SettlementState.FAILED: "failed_at",
    SettlementState.EXPIRED: "failed_at",
}


class Settlement(SQLModel, table=True):
    __tablename__ = "settlements"
    __table_args__ = (
        UniqueConstraint("network", "asset", "payer", "nonce", name="uq_settlement_authorization"),
        Index("ix_settlement_signer_nonce", "network", "signer", "tx_nonce"),
    )

    id: int | None = Field(default=None, primary_key=True)
    network: str = Field(max_length=64)
    asset: str = Field(max_length=42)  # checksummed
    payer: str = Field(max_length=42, index=True)
    payee: str = Field(max_length=42, index=True)
    nonce: str = Field(max_length=66)  # 0x + 64 hex, lowercase
    value: int = Field(sa_type=Uint256)
    valid_after: int = Field(sa_type=Uint256)
    valid_before: int = Field(sa_type=Uint256)
    signature: str  # 0x hex; not a secret (it can only pay this payee), needed to resend after a crash
    x402_version: int
    signature_hash: str = Field(default="", max_length=66)  # keccak of the signature, for lookups and exports
    # Attribution, resolved when the authorization is recorded (agent by payer wallet, capability by
    # payTo + resource); "unregistered" when unknown.
    agent_id: str = Field(default="unregistered", max_length=64, index=True)
    team: str = Field(default="unregistered", max_length=64)
    cost_center: str = Field(default="unregistered", max_length=64)
    capability_id: str = Field(default="unregistered", max_length=64, index=True)
    provider: str = Field(default="unregistered", max_length=64)
    resource_url: str | None = Field(default=None, max_length=2000)
    request_id: str | None = Field(default=None, max_length=128)
    state: str = Field(default=SettlementState.VERIFIED, max_length=16, index=True)
    signer: str | None = Field(default=None, max_length=42)  # facilitator hot wallet that sent it
    # The signer's transaction nonce, allocated to this row in the same database transaction that hands it
    # out (while the row is still verified): every transaction ever signed for this authorization uses it,
    # so at most one of them can be mined.
    tx_nonce: int | None = None
    tx_hash: str | None = Field(default=None, max_length=66, index=True)
    raw_transaction: str | None = None  # signed bytes, so a crash between store and send can resend
    block_number: int | None = None
    block_hash: str | None = Field(default=None, max_length=66)
    gas_used: int | None = None
    effective_gas_price: int | None = Field(default=None, sa_type=Uint256)
    error_reason: str | None = Field(default=None, max_length=80)
    error_message: str | None = None
    # Who works on the row while it is verified (a process id), until when: renewed while working, taken
    # over by another process only once it has expired.
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # When success was answered for this authorization: exactly once, ever.
    answered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)
    submitted_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    failed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    finalized_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)


class SignerNonce(SQLModel, table=True):
    """The next transaction nonce of one facilitator hot wallet on one network.

    Allocated with one atomic ``UPDATE ... RETURNING`` so replicas sharing the database never hand
    out the same nonce twice.
    """

    __tablename__ = "signer_nonces"

    network: str = Field(primary_key=True, max_length=64)
    address: str = Field(primary_key=True, max_length=42)
    next_nonce: int
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)


class GasSpend(SQLModel, table=True):
    """Gas the hot wallets paid per network and minute (wei), for the hourly gas budget."""

    __tablename__ = "gas_spend"

    network: str = Field(primary_key=True, max_length=64)
    minute: int = Field(primary_key=True)  # Unix time // 60
    wei: int = Field(sa_type=BigInteger)  # < 9.2e18 wei a minute: more than any hot wallet spends


class EntryType(StrEnum):
    PAYMENT = "payment"  # the agent's spend, the provider's revenue
    NETWORK_FEE = "network_fee"  # gas the facilitator paid to settle, attributed to the same agent
    REVERSAL = "reversal"  # undoes one earlier line, side swapped


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


NATIVE_ASSET = "native"  # the chain's gas currency (wei), for network-fee lines


class JournalLine(SQLModel, table=True):
    """One line of double entry. Per asset, debits equal credits over every settlement.

    Append-only: money rows are never updated or deleted; a correction is a reversing line. Attribution
    (agent, team, cost centre, capability, provider) is copied onto each line when it is booked, so a
    later re-organisation does not rewrite history.

    Tamper-evident: ``content_hash`` is the SHA-256 of the line's canonical content and ``chain_hash``
    links it to the line before it (in id order), so an edit, a deletion, an insertion or a reordering
    shows up when the chain is walked (``app.settlement.journal``). The database refuses UPDATE and
    DELETE on this table (migration 0003's triggers).
    """

    __tablename__ = "journal_lines"
    __table_args__ = (
        Index("ix_journal_booked_at", "booked_at"),
        Index("ix_journal_account_kind_booked", "account_kind", "booked_at"),
        UniqueConstraint("reverses_id", name="uq_journal_reversed_once"),
    )

    id: int | None = Field(default=None, primary_key=True)
    settlement_id: int = Field(sa_column=Column(Integer, ForeignKey("settlements.id"), nullable=False, index=True))
    entry_type: str = Field(max_length=16)
    account: str = Field(max_length=200)  # e.g. agent:fleet-7:spend, provider:maps:revenue
    account_kind: str = Field(max_length=32)  # agent_spend | provider_revenue | agent_fees | facilitator_gas
    side: str = Field(max_length=6)
    amount: int = Field(sa_type=Uint256)
    asset: str = Field(max_length=42)  # token address, or "native" for gas
    network: str = Field(max_length=64)
    agent_id: str = Field(max_length=64)
    team: str = Field(max_length=64)
    cost_center: str = Field(max_length=64)
    capability_id: str = Field(max_length=64)
    provider: str = Field(max_length=64)
    reverses_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("journal_lines.id"), nullable=True)
    )
    memo: str = Field(default="", max_length=500)
    booked_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)
    # Hex SHA-256 digests, set by the booking (SettlementRepository) under the journal head's lock.
    content_hash: str = Field(default="", max_length=64)
    chain_hash: str = Field(default="", max_length=64)


JOURNAL_HEAD_ID = 1  # the journal head is one row


class JournalHead(SQLModel, table=True):
    """The end of the journal's hash chain: the last line booked and its chain hash.

    One row, locked (``SELECT ... FOR UPDATE``) by every booking before it links new lines, so bookings
    on replicas sharing PostgreSQL take turns and never both link to the same previous line. It also
    anchors the chain's end: lines cut off the end, or appended without the head, no longer match it.
    """

    __tablename__ = "journal_head"
    __table_args__ = (CheckConstraint(f"id = {JOURNAL_HEAD_ID}", name="ck_journal_head_one_row"),)

    id: int = Field(default=JOURNAL_HEAD_ID, primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_line_id: int | None = None  # None: nothing booked yet
    chain_hash: str = Field(max_length=64)  # the last line's chain hash; the genesis value when empty
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime, nullable=False)
