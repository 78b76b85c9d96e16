"""The facilitator API's documented shapes. The wire models themselves are the protocol's (``app.protocol``).

The routes read the body as raw bytes and parse it with ``parse_facilitator_request`` (an invalid payment
is an answer, HTTP 200, not a 400), so the request body is declared from this model instead of being
validated by FastAPI.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.protocol import PaymentPayload, PaymentPayloadV1, PaymentRequirements, PaymentRequirementsV1


class FacilitatorRequestBody(BaseModel):
    """POST /verify and /settle: a signed payment and the requirements it claims to satisfy."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, title="FacilitatorRequest")

    x402_version: int = Field(description="1 or 2; must equal paymentPayload.x402Version when given")
    payment_payload: PaymentPayload | PaymentPayloadV1
    payment_requirements: PaymentRequirements | PaymentRequirementsV1
