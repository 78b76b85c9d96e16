"""Example paid routes served in-process (the dev stack and the demo mount them; production does not).

Each is gated by its capability id: the price, payee and status come from the registry.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Depends, HTTPException

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
