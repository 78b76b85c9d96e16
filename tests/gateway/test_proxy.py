"""The reverse proxy in front of a real upstream on a loopback port: paid requests reach it with the payer's
identity and nothing of the payment, bodies stream both ways, and an upstream failure is passed on
without a settlement. The 50 MB test runs the service as its own process to measure its memory."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from app.db.engine import make_engine
from app.db.schema import create_schema
from app.dev.devchain import free_port
from app.gateway import proxy
from app.protocol import decode_header
from app.registry.models import Agent, Capability
from app.registry.repository import RegistryRepository
from tests.gateway.conftest import offered, pay_v2
from tests.support.payments import BASE_SEPOLIA, USDC
from tests.support.servers import serve

PROXY_PRICE = 3_000
CHUNK = 64 * 1024
BIG = 50 * 1024 * 1024
SLOW_SECONDS = 2.0
GZIPPED = gzip.compress(b"compressed by the provider; passed on as is " * 100)


# ------------------------------------------------------------------------------------------ upstream


def upstream_app() -> FastAPI:
    """A provider's unchanged service: echo, a crash, a slow answer, and a large generated body."""
    app = FastAPI()
    app.state.hits = 0

    @app.api_route("/echo", methods=["GET", "POST", "PUT", "DELETE"])
    @app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def echo(request: Request) -> JSONResponse:
        request.app.state.hits += 1
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        return JSONResponse(
            {"method": request.method, "path": request.url.path, "query": request.url.query,
             "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers.raw],
             "size": size, "sha256": digest.hexdigest()},
            headers={"Keep-Alive": "timeout=5", "Proxy-Authenticate": "Basic", "Connection": "X-Listed",
                     "X-Listed": "hop", "X-Kept": "end-to-end", "PAYMENT-RESPONSE": "forged-by-upstream"},
        )

    @app.get("/fail")
    async def fail(request: Request) -> JSONResponse:
        request.app.state.hits += 1
        return JSONResponse({"error": "boom", "detail": "the upstream crashed"}, status_code=500)

    @app.get("/slow")
    async def slow(request: Request) -> dict[str, str]:
        request.app.state.hits += 1
        await asyncio.sleep(SLOW_SECONDS)
        return {"late": "yes"}

    @app.get("/gzipped")
    async def gzipped(request: Request) -> Response:
        request.app.state.hits += 1
        return Response(GZIPPED, media_type="text/plain", headers={
            "Content-Encoding": "gzip", "X-Accept-Encoding-Seen": request.headers.get("accept-encoding", "none")})

    @app.get("/big")
    async def big(size: int = BIG) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            block = bytes(range(256)) * (CHUNK // 256)
            sent = 0
            while sent < size:
                piece = block[: min(CHUNK, size - sent)]
                sent += len(piece)
                yield piece

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, FastAPI]]:
    app = upstream_app()
    with serve(app) as url:
        yield url, app


def upstream_capability(capability_id: str, upstream_url: str, pay_to: str, *, status: str = "approved"
                        ) -> Capability:
    return Capability(
        id=capability_id, provider_team="legacy", name="Legacy service", description="An upstream behind the proxy",
        price=PROXY_PRICE, asset=USDC, network=BASE_SEPOLIA, pay_to=pay_to, upstream_url=upstream_url, status=status,
    )


@pytest.fixture
def proxied(gateway_settings, registry, upstream, dev_deployment):
    """The capability ``legacy`` whose upstream is the test upstream, and a registered agent paying for it."""
    url, app = upstream
    registry.put_capability(upstream_capability("legacy", url, dev_deployment.wallets.providers[0].address))
    payer = dev_deployment.wallets.agents[0]
    engine = make_engine(gateway_settings.database_url)
    RegistryRepository(engine).upsert_agents([Agent(agent_id="fleet-1", wallet=payer.address, team="alpha")])
    engine.dispose()
    return app


def paid(gateway, path: str, payer, **kwargs) -> httpx.Response:
    """Ask for ``path``, pay what the 402 offers, and send the request again with the payment."""
    requirement = offered(gateway.request(kwargs.get("method", "GET"), path))
    headers = {"PAYMENT-SIGNATURE": pay_v2(payer, requirement), **kwargs.pop("headers", {})}
    return gateway.request(kwargs.pop("method", "GET"), path, headers=headers, **kwargs)


def seen_headers(response: httpx.Response) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        headers.setdefault(name, []).append(value)
    return headers


# ------------------------------------------------------------------------------------ paid and unpaid


def test_an_unpaid_request_gets_402_and_never_reaches_the_upstream(gateway, proxied):
    hits = proxied.state.hits
    response = gateway.get("/cap/legacy/echo/hello?x=1")
    assert response.status_code == 402
    requirement = offered(response)
    assert requirement["amount"] == str(PROXY_PRICE)
    assert requirement["extra"]["capabilityId"] == "legacy"
    assert decode_header(response.headers["payment-required"])["resource"]["url"].endswith("/cap/legacy/echo/hello?x=1")
    assert response.json()["x402Version"] == 1
    assert proxied.state.hits == hits


def test_a_paid_request_is_forwarded_with_the_payer_and_settled_once(gateway, proxied, dev_deployment, balances, w3):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    response = paid(gateway, "/cap/legacy/echo/hello/world?a=1&b=two", payer,
                    headers={"X-Payer-Address": "0x000000000000000000000000000000000000dEaD", "X-Agent-Id": "forged"})
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert (echoed["method"], echoed["path"], echoed["query"]) == ("GET", "/echo/hello/world", "a=1&b=two")
    seen = seen_headers(response)
    assert seen["x-payer-address"] == [payer.address]  # ours, not the caller's
    assert seen["x-agent-id"] == ["fleet-1"]
    assert "payment-signature" not in seen and "x-payment" not in seen
    assert seen["x-forwarded-host"] == ["testserver"]

    receipt = decode_header(response.headers["payment-response"])  # the upstream's forged one was dropped
    assert receipt["success"] is True and receipt["payer"] == payer.address
    assert w3.eth.get_transaction_receipt(receipt["transaction"])["status"] == 1
    assert response.headers["cache-control"] == "private"
    assert watched.moved() == {payer.address: -PROXY_PRICE, payee: PROXY_PRICE}


def test_the_capability_root_forwards_to_the_upstream_url_itself(gateway, registry, upstream, proxied, dev_deployment):
    url, _app = upstream
    payee = dev_deployment.wallets.providers[0].address
    registry.put_capability(upstream_capability("echo-root", url + "/echo", payee))
    response = paid(gateway, "/cap/echo-root?q=1", dev_deployment.wallets.agents[0])
    assert response.status_code == 200, response.text
    assert (response.json()["path"], response.json()["query"]) == ("/echo", "q=1")


def test_hop_by_hop_headers_are_dropped_both_ways(gateway, proxied, dev_deployment):
    response = paid(gateway, "/cap/legacy/echo", dev_deployment.wallets.agents[0], headers={
        "Connection": "keep-alive, X-Hop-Listed", "X-Hop-Listed": "1", "Keep-Alive": "300",
        "Proxy-Authorization": "Basic abc", "TE": "trailers", "Trailer": "X-Sum", "Upgrade": "h2c",
        "X-End-To-End": "kept",
    })
    assert response.status_code == 200, response.text
    seen = seen_headers(response)
    for hop in ("x-hop-listed", "keep-alive", "proxy-authorization", "te", "trailer", "upgrade"):
        assert hop not in seen, hop
    assert seen["x-end-to-end"] == ["kept"]
    assert seen["host"] != ["testserver"]  # the upstream's own host, set by the HTTP client
    assert seen.get("connection", ["keep-alive"]) == ["keep-alive"]  # the client's own, not the caller's

    assert response.headers["x-kept"] == "end-to-end"
    for hop in ("keep-alive", "proxy-authenticate", "x-listed"):
        assert hop not in response.headers, hop


def test_a_post_body_is_streamed_to_the_upstream(gateway, proxied, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    blocks = [os.urandom(CHUNK) for _ in range(64)]  # 4 MiB, sent chunked: no length known up front
    response = paid(gateway, "/cap/legacy/echo/upload", payer, method="POST", content=iter(blocks))
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["size"] == 64 * CHUNK
    assert echoed["sha256"] == hashlib.sha256(b"".join(blocks)).hexdigest()
    seen = seen_headers(response)
    assert seen["transfer-encoding"] == ["chunked"] and "content-length" not in seen  # not buffered to count it
    assert watched.moved() == {payer.address: -PROXY_PRICE, payee: PROXY_PRICE}


def test_a_post_body_with_a_known_length_keeps_its_length(gateway, proxied, dev_deployment):
    body = os.urandom(100_000)
    response = paid(gateway, "/cap/legacy/echo/upload", dev_deployment.wallets.agents[0], method="POST", content=body)
    assert response.status_code == 200, response.text
    assert response.json()["size"] == len(body)
    assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()
    assert seen_headers(response)["content-length"] == [str(len(body))]


def test_a_compressed_response_passes_through_undecoded_and_only_the_callers_accept_encoding_goes_up(
    gateway, proxied, dev_deployment
):
    payer = dev_deployment.wallets.agents[0]
    with_gzip = paid(gateway, "/cap/legacy/gzipped", payer, headers={"Accept-Encoding": "gzip"})
    assert with_gzip.status_code == 200
    assert with_gzip.headers["content-encoding"] == "gzip"
    assert with_gzip.headers["x-accept-encoding-seen"] == "gzip"
    assert with_gzip.content == gzip.decompress(GZIPPED)  # httpx decodes; the bytes on the wire were the provider's
    echoed = paid(gateway, "/cap/legacy/echo", payer, headers={"Accept-Encoding": "identity", "User-Agent": "agent/1"})
    # the caller's own values, once each: the proxy's HTTP client adds none of its own
    assert seen_headers(echoed)["accept-encoding"] == ["identity"]
    assert seen_headers(echoed)["user-agent"] == ["agent/1"]


# ------------------------------------------------------------------------------ upstream failures


def test_an_upstream_500_is_passed_on_and_not_settled(gateway, proxied, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    header = pay_v2(payer, offered(gateway.get("/cap/legacy/fail")))
    response = gateway.get("/cap/legacy/fail", headers={"PAYMENT-SIGNATURE": header})
    assert response.status_code == 500
    assert response.json() == {"error": "boom", "detail": "the upstream crashed"}
    assert "payment-response" not in response.headers
    assert watched.moved() == {payer.address: 0, payee: 0}
    # The claim was released: the same authorization pays for the next successful call, once.
    retried = gateway.get("/cap/legacy/echo", headers={"PAYMENT-SIGNATURE": header})
    assert retried.status_code == 200, retried.text
    assert watched.moved() == {payer.address: -PROXY_PRICE, payee: PROXY_PRICE}


def test_an_upstream_timeout_is_a_504_and_not_settled(gateway, proxied, dev_deployment, balances, monkeypatch):
    monkeypatch.setattr(proxy, "READ_TIMEOUT_SECONDS", 0.5)
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    watched = balances(payer.address, payee)
    started = time.monotonic()
    response = paid(gateway, "/cap/legacy/slow", payer)
    assert response.status_code == 504, response.text
    assert time.monotonic() - started < SLOW_SECONDS
    assert response.json()["error"] == "upstream_timeout"
    assert "not charged" in response.json()["message"]
    assert "payment-response" not in response.headers
    assert watched.moved() == {payer.address: 0, payee: 0}


def test_an_unreachable_upstream_is_a_502_and_not_settled(gateway, registry, proxied, dev_deployment, balances):
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    registry.put_capability(upstream_capability("gone", f"http://127.0.0.1:{free_port()}", payee))
    watched = balances(payer.address, payee)
    response = paid(gateway, "/cap/gone/anything", payer)
    assert response.status_code == 502, response.text
    assert response.json()["error"] == "upstream_unavailable"
    assert "payment-response" not in response.headers
    assert watched.moved() == {payer.address: 0, payee: 0}


# ----------------------------------------------------------------------------- what is not proxied


def test_a_capability_without_upstream_or_unknown_is_404_without_asking_for_payment(gateway, proxied):
    response = gateway.get("/cap/forecast/anything")  # an in-process route, no upstream
    assert response.status_code == 404
    assert response.json()["error"] == "capability_not_proxied"
    assert "/examples/forecast" in response.json()["message"]
    assert "payment-required" not in response.headers
    unknown = gateway.get("/cap/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"] == "capability_not_found"


def test_a_pending_capability_is_not_served(gateway, registry, upstream, proxied, dev_deployment):
    url, _app = upstream
    registry.put_capability(upstream_capability("unreviewed", url, dev_deployment.wallets.providers[0].address,
                                        status="pending"))
    response = gateway.get("/cap/unreviewed/echo")
    assert response.status_code == 403
    assert response.json()["error"] == "capability_not_available"


def test_dot_segments_cannot_climb_out_of_the_upstream_path(gateway, proxied):
    response = gateway.get("/cap/legacy/echo/%2e%2e/%2e%2e/admin")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_path"


# --------------------------------------------------------------- 50 MB through a separate process


def _memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


@pytest.fixture
def service_process(tmp_path, anvil, dev_deployment, chain_snapshot, upstream, database_url
                    ) -> Iterator[tuple[str, int]]:
    """``x402-settle serve`` in its own process, configured only through X402_* variables, on either ledger."""
    data_dir = tmp_path / "service"
    data_dir.mkdir()
    engine = make_engine(database_url)
    create_schema(engine)
    RegistryRepository(engine).put_capability(upstream_capability("bulk", upstream[0],
                                                            dev_deployment.wallets.providers[0].address))
    engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "X402_RPC_URLS": json.dumps({BASE_SEPOLIA: anvil.rpc_url}),
        "X402_DATA_DIR": str(data_dir),
        "X402_DATABASE_URL": database_url,
        "X402_FACILITATOR_PRIVATE_KEY": dev_deployment.wallets.facilitator.key.hex(),
        "X402_EXAMPLE_ROUTES": "true",
        "X402_LOG_LEVEL": "warning",
        "X402_FACILITATOR_REQUIRE_API_KEY": "false",
    }
    command = [str(Path(sys.executable).with_name("x402-settle")), "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = (tmp_path / "service.log").open("wb")
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start: {(tmp_path / 'service.log').read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_a_50_mb_upstream_response_streams_through_with_bounded_memory(service_process, dev_deployment, balances,
                                                                      database_url):
    url, pid = service_process
    payer, payee = dev_deployment.wallets.agents[0], dev_deployment.wallets.providers[0].address
    with httpx.Client(base_url=url, timeout=60) as http:
        requirement = offered(http.get("/cap/bulk/big"))
        # A small paid call first, so everything a paid request loads is loaded before measuring.
        warm = http.get("/cap/bulk/big?size=100000", headers={"PAYMENT-SIGNATURE": pay_v2(payer, requirement)})
        assert warm.status_code == 200 and len(warm.content) == 100_000
        watched = balances(payer.address, payee)
        baseline = _memory_kb(pid)["VmRSS"]
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS

        received = 0
        with http.stream("GET", "/cap/bulk/big", headers={"PAYMENT-SIGNATURE": pay_v2(payer, requirement)}) as big:
            assert big.status_code == 200
            assert len(big.headers.get_list("date")) == 1 and len(big.headers.get_list("server")) == 1
            receipt = decode_header(big.headers["payment-response"])
            for chunk in big.iter_raw():
                received += len(chunk)  # read and discard
        peak = _memory_kb(pid)["VmHWM"]

    assert received == BIG
    assert receipt["success"] is True
    assert watched.moved() == {payer.address: -PROXY_PRICE, payee: PROXY_PRICE}
    growth_mb, peak_mb = (peak - baseline) / 1024, peak / 1024
    print(f"[{database_url.split(':')[0]}] service RSS before the 50 MB stream {baseline / 1024:.1f} MB, "
          f"peak during it {peak_mb:.1f} MB (+{growth_mb:.1f} MB)")
    # Buffering the body would add at least its 50 MB; streaming adds a few chunks' worth.
    assert growth_mb < 20, f"peak RSS grew by {growth_mb:.1f} MB while streaming 50 MB"
    if database_url.startswith("sqlite"):
        # The whole service (facilitator, ledger, gateway and proxy in one process, as configured by default)
        # stays under 100 MB. On PostgreSQL the driver alone adds about 8 MB (psycopg's import): see README.
        assert peak_mb < 100, f"the service peaked at {peak_mb:.1f} MB while streaming 50 MB"
