"""Example paid routes served in-process (the dev stack and the demo mount them; production does not).

Each is gated by its capability id: the price, payee and status come from the registry.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from app.gateway.paywall import AdmittedPayment, require_payment

FORECAST_CAPABILITY = "forecast"

router = APIRouter(prefix="/examples", tags=["examples"])


@router.get("/forecast", summary="A paid weather forecast (capability 'forecast')")
async def forecast(city: str = "Lisbon", payment: AdmittedPayment = Depends(require_payment(FORECAST_CAPABILITY))
                   ) -> dict[str, Any]:
    if not city.strip() or len(city) > 100:
        raise HTTPException(status_code=422, detail="city must be 1-100 characters")  # not charged: >= 400
    seed = int.from_bytes(hashlib.sha256(city.lower().encode()).digest()[:4], "big")
    return {
        "city": city,
        "forecast": ["sunny", "cloudy", "rain", "wind"][seed % 4],
        "temperatureC": 10 + seed % 20,
        "paidBy": payment.agent_id,
    }


def translation_upstream() -> Any:
    """A stand-in provider service in "any language": it knows nothing of x402. The demo puts it
    behind the reverse proxy (``/cap/translate/...``), which charges for it."""
    from fastapi import FastAPI

    upstream = FastAPI(title="example translation upstream")
    words = {"hello": "olá", "world": "mundo", "thank you": "obrigado", "payment": "pagamento"}

    @upstream.get("/translate")
    async def translate(request: Request, text: str = "hello") -> dict[str, Any]:
        return {
            "text": text,
            "translation": " ".join(words.get(word, word) for word in text.lower().split()),
            "payer": request.headers.get("x-payer-address"),
            "agent": request.headers.get("x-agent-id"),
        }

    return upstream
