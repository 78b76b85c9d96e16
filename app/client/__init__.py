"""Agent side: an httpx transport that pays x402 402s automatically, under a spend policy.

```python
from app.client import PaymentSigner, SpendPolicy, SqliteSpendLedger, paying_client, receipt_of

signer = PaymentSigner.from_key(AGENT_KEY)            # or PaymentSigner.from_keystore(path, password)
policy = SpendPolicy(max_per_payment=50_000, max_per_day=1_000_000, allowed_networks=frozenset({"eip155:84532"}))
ledger = SqliteSpendLedger("agent-spend.db")          # shared by the agent's processes; omit for in-memory
with paying_client(signer, policy, ledger=ledger, timeout=30) as http:
    response = http.get("http://127.0.0.1:4021/cap/weather/today")
    receipt = receipt_of(response)                    # SettleResponse or None
```
"""

from app.client.ledger import (
    DAY_SECONDS,
    SpendEntry,
    SpendLedger,
    SpendLedgerError,
    SqliteSpendLedger,
    open_spend_ledger,
)
from app.client.policy import (
    DEFAULT_MAX_PER_DAY,
    DEFAULT_MAX_PER_PAYMENT,
    Choice,
    ClientPaymentError,
    KnownAsset,
    NoPayableRequirement,
    PolicyViolation,
    SpendPolicy,
    choose_requirement,
    known_usdc,
    reserve_payment,
)
from app.client.signer import DEFAULT_MAX_VALIDITY_SECONDS, PaymentSigner, SignerError
from app.client.transport import (
    AsyncPaymentTransport,
    InvalidPaymentRequired,
    PaymentMade,
    PaymentTransport,
    RequestBodyTooLarge,
    async_paying_client,
    paying_client,
    payment_of,
    receipt_of,
)

__all__ = [
    "DAY_SECONDS",
    "DEFAULT_MAX_PER_DAY",
    "DEFAULT_MAX_PER_PAYMENT",
    "DEFAULT_MAX_VALIDITY_SECONDS",
    "AsyncPaymentTransport",
    "Choice",
    "ClientPaymentError",
    "InvalidPaymentRequired",
    "KnownAsset",
    "NoPayableRequirement",
    "PaymentMade",
    "PaymentSigner",
    "PaymentTransport",
    "PolicyViolation",
    "RequestBodyTooLarge",
    "SignerError",
    "SpendEntry",
    "SpendLedger",
    "SpendLedgerError",
    "SpendPolicy",
    "SqliteSpendLedger",
    "async_paying_client",
    "choose_requirement",
    "known_usdc",
    "open_spend_ledger",
    "paying_client",
    "payment_of",
    "receipt_of",
    "reserve_payment",
]
