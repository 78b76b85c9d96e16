"""The paying transports against scripted servers (httpx.MockTransport): one payment per request at most,
refusals before signing, replayable bodies, ledger accounting, v1 and v2."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from eth_account import Account

from app.client import (
    AsyncPaymentTransport,
    InvalidPaymentRequired,
    PaymentSigner,
    PaymentTransport,
    PolicyViolation,
    RequestBodyTooLarge,
    SignerError,
    SpendLedger,
    SpendPolicy,
    async_paying_client,
    paying_client,
    payment_of,
    receipt_of,
)
from app.protocol import PaymentPayload, PaymentPayloadV1, decode_header, encode_header
from tests.support.payments import BASE_SEPOLIA, requirements_v1, requirements_v2

KEY = "0x" + "5d" * 32
PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
URL = "http://provider.test/weather"
PRICE = 10_000
TX = "0x" + "ab" * 32


def payment_required(amount: int = PRICE, **overrides) -> str:
    return encode_header({"x402Version": 2, "error": "Payment required", "resource": {"url": URL},
                          "accepts": [requirements_v2(PAYEE, amount, **overrides)]})


def receipt(success: bool = True, transaction: str = TX) -> str:
    return encode_header({"success": success, "transaction": transaction if success else "",
                          "network": BASE_SEPOLIA, "payer": "0x" + "00" * 20,
                          **({} if success else {"errorReason": "insufficient_funds"})})


class Server:
    """A scripted x402 server: records every request; answers with ``paid`` when a payment is present."""

    def __init__(self, paid: Callable[[httpx.Request], httpx.Response] | None = None,
                 unpaid: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []
        self._paid = paid or (lambda _r: httpx.Response(200, json={"ok": True},
                                                        headers={"PAYMENT-RESPONSE": receipt()}))
        self._unpaid = unpaid or (lambda _r: httpx.Response(402, json={},
                                                            headers={"PAYMENT-REQUIRED": payment_required()}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(request.read())
        if "PAYMENT-SIGNATURE" in request.headers or "X-PAYMENT" in request.headers:
            return self._paid(request)
        return self._unpaid(request)

    @property
    def paid_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if "PAYMENT-SIGNATURE" in r.headers or "X-PAYMENT" in r.headers]


@pytest.fixture
def signer() -> PaymentSigner:
    return PaymentSigner.from_key(KEY)


@pytest.fixture
def clock() -> Iterator[list[float]]:
    yield [1_800_000_000.0]


def client_for(server: Server, signer: PaymentSigner, policy: SpendPolicy | None = None,
               ledger: SpendLedger | None = None, clock: list[float] | None = None) -> httpx.Client:
    now = clock or [1_800_000_000.0]
    return paying_client(signer, policy or SpendPolicy(), ledger=ledger, inner=httpx.MockTransport(server),
                         clock=lambda: now[0])


def test_a_402_is_paid_once_with_payment_signature_and_the_receipt_is_exposed(signer):
    server = Server()
    ledger = SpendLedger()
    with client_for(server, signer, ledger=ledger) as http:
        response = http.get(URL)

    assert response.status_code == 200
    assert len(server.requests) == 2 and len(server.paid_requests) == 1
    sent = PaymentPayload.model_validate(decode_header(server.paid_requests[0].headers["PAYMENT-SIGNATURE"]))
    assert sent.accepted.to_wire() == requirements_v2(PAYEE, PRICE)
    assert sent.resource is not None and sent.resource.url == URL
    assert sent.payload["authorization"]["from"] == signer.address
    got = receipt_of(response)
    assert got is not None and got.success and got.transaction == TX
    made = payment_of(response)
    assert made is not None
    assert (made.version, made.amount, made.network, made.outcome, made.capability) == (
        2, PRICE, BASE_SEPOLIA, "settled", URL)
    assert [(e.amount, e.status) for e in ledger.entries(1_800_000_000.0)] == [(PRICE, "settled")]


def test_a_second_402_after_paying_is_returned_not_paid_again_and_the_authorization_still_counts(signer):
    """Issue 10: the server holds a signed authorization after its 402, so it is never released."""
    server = Server(paid=lambda _r: httpx.Response(402, json={}, headers={"PAYMENT-REQUIRED": payment_required(),
                                                                          "PAYMENT-RESPONSE": receipt(False)}))
    ledger = SpendLedger()
    with client_for(server, signer, ledger=ledger) as http:
        response = http.get(URL)
    assert response.status_code == 402
    assert len(server.requests) == 2 and len(server.paid_requests) == 1
    assert payment_of(response).outcome == "refused"
    assert receipt_of(response).success is False
    assert [(e.amount, e.status) for e in ledger.entries(1_800_000_000.0)] == [(PRICE, "refused")]


def test_an_unknown_outcome_keeps_counting_against_the_budget(signer):
    server = Server(paid=lambda _r: httpx.Response(500, text="upstream exploded"))
    ledger = SpendLedger()
    with client_for(server, signer, ledger=ledger) as http:
        response = http.get(URL)
    assert response.status_code == 500
    assert payment_of(response).outcome == "unconfirmed"
    assert receipt_of(response) is None
    assert [(e.amount, e.status) for e in ledger.entries(1_800_000_000.0)] == [(PRICE, "unconfirmed")]


def test_a_request_that_already_carries_a_payment_is_sent_as_is(signer):
    server = Server(paid=lambda _r: httpx.Response(402, headers={"PAYMENT-REQUIRED": payment_required()}))
    with client_for(server, signer) as http:
        response = http.get(URL, headers={"PAYMENT-SIGNATURE": "e30="})
    assert response.status_code == 402
    assert len(server.requests) == 1
    assert server.requests[0].headers["PAYMENT-SIGNATURE"] == "e30="
    assert payment_of(response) is None


def test_two_calls_make_two_payments_with_different_nonces(signer):
    server = Server()
    with client_for(server, signer) as http:
        first, second = http.get(URL), http.get(URL)
    assert first.status_code == second.status_code == 200
    assert len(server.paid_requests) == 2
    assert payment_of(first).nonce != payment_of(second).nonce


def test_over_the_daily_limit_the_agent_refuses_before_signing(signer, monkeypatch, clock):
    server = Server()
    ledger = SpendLedger()
    policy = SpendPolicy(max_per_day=25_000)
    with client_for(server, signer, policy, ledger, clock) as http:
        assert http.get(URL).status_code == 200
        assert http.get(URL).status_code == 200
        signed: list[object] = []
        monkeypatch.setattr(PaymentSigner, "sign_exact", lambda *a, **k: signed.append(a) or {})
        with pytest.raises(PolicyViolation) as caught:
            http.get(URL)
    error = caught.value
    assert (error.limit, error.requested, error.allowed, error.already_spent, error.excess) == (
        "max_per_day", PRICE, 25_000, 20_000, 5_000)
    assert "max_per_day" in str(error) and "by 5000" in str(error)
    assert signed == []
    assert len(server.requests) == 5 and len(server.paid_requests) == 2  # the third call: one unpaid request
    assert ledger.spent(clock[0]) == 20_000

    clock[0] += 24 * 60 * 60 + 1  # a day later the window is empty again
    monkeypatch.undo()
    with client_for(server, signer, policy, ledger, clock) as http:
        assert http.get(URL).status_code == 200


def test_a_max_per_payment_refusal_sends_nothing_paid(signer):
    server = Server()
    with client_for(server, signer, SpendPolicy(max_per_payment=9_999)) as http, \
            pytest.raises(PolicyViolation) as caught:
        http.get(URL)
    assert (caught.value.limit, caught.value.excess) == ("max_per_payment", 1)
    assert server.paid_requests == []


def test_a_v1_402_body_is_paid_with_x_payment(signer):
    def unpaid(_r: httpx.Request) -> httpx.Response:
        return httpx.Response(402, json={"x402Version": 1, "error": "X-PAYMENT header is required",
                                         "accepts": [requirements_v1(PAYEE, 7_000, resource=URL)]})

    v1_receipt = encode_header({"success": True, "transaction": TX, "network": "base-sepolia"})
    server = Server(paid=lambda _r: httpx.Response(200, json={"ok": 1}, headers={"X-PAYMENT-RESPONSE": v1_receipt}),
                    unpaid=unpaid)
    with client_for(server, signer) as http:
        response = http.get(URL)
    assert response.status_code == 200
    [paid] = server.paid_requests
    assert "PAYMENT-SIGNATURE" not in paid.headers
    sent = PaymentPayloadV1.model_validate(decode_header(paid.headers["X-PAYMENT"]))
    assert (sent.scheme, sent.network, sent.payload["authorization"]["value"]) == ("exact", "base-sepolia", "7000")
    assert receipt_of(response).network == "base-sepolia"
    assert payment_of(response).version == 1


def test_the_v2_header_wins_over_a_v1_body(signer):
    def unpaid(_r: httpx.Request) -> httpx.Response:
        return httpx.Response(402, headers={"PAYMENT-REQUIRED": payment_required()},
                              json={"x402Version": 1, "accepts": [requirements_v1(PAYEE, 1)]})

    server = Server(unpaid=unpaid)
    with client_for(server, signer) as http:
        http.get(URL)
    assert "PAYMENT-SIGNATURE" in server.paid_requests[0].headers


def test_a_402_that_is_not_x402_is_returned_untouched(signer):
    server = Server(unpaid=lambda _r: httpx.Response(402, text="pay me in gold"))
    with client_for(server, signer) as http:
        response = http.get(URL)
    assert (response.status_code, response.text, len(server.requests)) == (402, "pay me in gold", 1)


def test_an_unreadable_payment_required_header_is_an_error(signer):
    server = Server(unpaid=lambda _r: httpx.Response(402, headers={"PAYMENT-REQUIRED": "not base64!"}))
    with client_for(server, signer) as http, pytest.raises(InvalidPaymentRequired):
        http.get(URL)


def test_bodies_are_replayed_on_the_paid_retry(signer):
    server = Server()
    with client_for(server, signer) as http:
        http.post(URL, content=b'{"q":"rain"}')

        def chunks() -> Iterator[bytes]:
            yield b"part-1;"
            yield b"part-2"

        http.post(URL, content=chunks())
    assert server.bodies == [b'{"q":"rain"}', b'{"q":"rain"}', b"part-1;part-2", b"part-1;part-2"]


def test_a_large_streamed_body_is_refused_before_sending(signer):
    server = Server()

    def big() -> Iterator[bytes]:
        for _ in range(17):
            yield b"x" * 65_536

    with client_for(server, signer) as http, pytest.raises(RequestBodyTooLarge, match="1048576 bytes"):
        http.post(URL, content=big())
    assert server.requests == []
    # An in-memory body of any size is replayable, so it is fine.
    with client_for(server, signer) as http:
        assert http.post(URL, content=b"x" * (2 * 1024 * 1024)).status_code == 200


def test_the_capability_id_in_extra_keys_the_budget(signer):
    extra = {"name": "USDC", "version": "2", "capabilityId": "weather"}
    server = Server(unpaid=lambda _r: httpx.Response(402, headers={"PAYMENT-REQUIRED": payment_required(extra=extra)}))
    policy = SpendPolicy(max_per_capability={"weather": 15_000})
    with client_for(server, signer, policy) as http:
        assert payment_of(http.get(URL)).capability == "weather"
        with pytest.raises(PolicyViolation) as caught:
            http.get(URL)
    assert (caught.value.limit, caught.value.capability, caught.value.excess) == ("max_per_capability", "weather",
                                                                                   5_000)


def test_concurrent_requests_share_one_budget(signer):
    server = Server()
    ledger = SpendLedger()
    policy = SpendPolicy(max_per_day=3 * PRICE)
    outcomes: list[str] = []
    with client_for(server, signer, policy, ledger) as http:
        def call() -> None:
            try:
                outcomes.append(str(http.get(URL).status_code))
            except PolicyViolation as error:
                outcomes.append(error.limit)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(outcomes) == ["200"] * 3 + ["max_per_day"] * 5
    assert len(server.paid_requests) == 3


def test_the_async_transport_pays_once_and_never_twice(signer):
    server = Server()
    refusing = Server(paid=lambda _r: httpx.Response(402, headers={"PAYMENT-REQUIRED": payment_required()}))

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async def streamed() -> AsyncIterator[bytes]:
            yield b"streamed-"
            yield b"body"

        async with async_paying_client(signer, SpendPolicy(), inner=httpx.MockTransport(server)) as http:
            ok = await http.post(URL, content=b"body")
            await http.post(URL, content=streamed())
        transport = AsyncPaymentTransport(signer, SpendPolicy(), inner=httpx.MockTransport(refusing))
        async with httpx.AsyncClient(transport=transport) as http:
            refused = await http.get(URL)
        return ok, refused

    ok, refused = asyncio.run(scenario())
    assert ok.status_code == 200 and receipt_of(ok).success
    assert server.bodies == [b"body", b"body", b"streamed-body", b"streamed-body"]
    assert refused.status_code == 402
    assert len(refusing.requests) == 2 and len(refusing.paid_requests) == 1


def test_the_sync_transport_class_can_be_mounted_directly(signer):
    server = Server()
    transport = PaymentTransport(signer, SpendPolicy(), inner=httpx.MockTransport(server))
    with httpx.Client(transport=transport) as http:
        assert http.get(URL).status_code == 200
    assert transport.ledger.spent() == PRICE


class RefusingSigner(PaymentSigner):
    """A signer that fails (as a hardware wallet that says no would): nothing is signed."""

    __slots__ = ()

    def sign_exact(self, *args, **kwargs):
        raise SignerError("the key refused to sign")


def test_only_an_authorization_that_was_never_signed_is_released(signer):
    server = Server()
    ledger = SpendLedger()
    refusing = RefusingSigner(Account.from_key(KEY))
    with client_for(server, refusing, ledger=ledger) as http, pytest.raises(SignerError):
        http.get(URL)
    assert server.paid_requests == []
    assert ledger.entries(1_800_000_000.0) == []
