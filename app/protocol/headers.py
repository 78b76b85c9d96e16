"""The x402 HTTP header names, for the gateway that reads and writes them and the client that sends them.

v2 carries the payment in ``PAYMENT-SIGNATURE`` and the receipt in ``PAYMENT-RESPONSE``, and the 402's
offer in ``PAYMENT-REQUIRED``; v1 used ``X-PAYMENT`` and ``X-PAYMENT-RESPONSE`` (its offer is the body).
"""

PAYMENT_REQUIRED = "PAYMENT-REQUIRED"
PAYMENT_SIGNATURE = "PAYMENT-SIGNATURE"
PAYMENT_RESPONSE = "PAYMENT-RESPONSE"
X_PAYMENT = "X-PAYMENT"
X_PAYMENT_RESPONSE = "X-PAYMENT-RESPONSE"

# What a browser's script may read of a cross-origin answer (CORS ``Access-Control-Expose-Headers``).
EXPOSED_HEADERS = f"{PAYMENT_REQUIRED}, {PAYMENT_RESPONSE}, {X_PAYMENT_RESPONSE}"

PAYMENT_HEADERS = frozenset({PAYMENT_REQUIRED, PAYMENT_SIGNATURE, PAYMENT_RESPONSE, X_PAYMENT, X_PAYMENT_RESPONSE})
