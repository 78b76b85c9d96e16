"""Header codec: standard base64 (``+/``, ``=``-padded) of UTF-8 compact JSON.

Used for ``PAYMENT-REQUIRED``, ``PAYMENT-SIGNATURE``, ``PAYMENT-RESPONSE`` and the v1 ``X-PAYMENT`` /
``X-PAYMENT-RESPONSE``. Decoding is strict: one canonical encoding, one JSON object, no duplicate keys.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, NoReturn

from pydantic import BaseModel

from app.protocol.errors import ProtocolError
from app.protocol.reasons import Reason

#: Longest header value :func:`decode_header` accepts by default (characters of base64).
MAX_HEADER_BYTES = 16 * 1024
#: Largest facilitator request body (/verify, /settle) accepted.
MAX_BODY_BYTES = 64 * 1024

_HTTP_OWS = " \t"


class _DuplicateKeyError(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _to_jsonable(value: BaseModel | Mapping[str, Any]) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"encode_header takes a pydantic model or a mapping, not {type(value).__name__}")


def dumps_compact(value: BaseModel | Mapping[str, Any]) -> str:
    """Compact JSON text of a model (camelCase, None fields omitted) or a mapping (as given)."""
    return json.dumps(_to_jsonable(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_header(value: BaseModel | Mapping[str, Any]) -> str:
    """Base64 header value for a model or a mapping.

    A pydantic model is dumped with ``mode="json", by_alias=True, exclude_none=True``; a mapping is
    encoded as given (its ``None`` values become JSON ``null``).
    """
    return base64.b64encode(dumps_compact(value).encode("utf-8")).decode("ascii")


def loads_object(text: str | bytes, *, reason: Reason, what: str) -> dict[str, Any]:
    """Parse strict JSON (no NaN/Infinity, no duplicate keys) that must be an object.

    Raises ProtocolError(reason) with a message starting with ``what``.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(reason, f"{what} is not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant)
    except _DuplicateKeyError as exc:
        raise ProtocolError(reason, f"{what} has a duplicate JSON key {str(exc)[:40]!r}") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(reason, f"{what} is not valid JSON ({exc.msg} at position {exc.pos})") from None
    except RecursionError:
        raise ProtocolError(reason, f"{what} is not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # NaN/Infinity, integers beyond the int-string conversion limit
        raise ProtocolError(reason, f"{what} is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(data, dict):
        raise ProtocolError(reason, f"{what} must be a JSON object, got a JSON {_json_kind(data)}")
    return data


def _json_kind(data: Any) -> str:
    if isinstance(data, list):
        return "array"
    if isinstance(data, str):
        return "string"
    if isinstance(data, bool):
        return "boolean"
    if data is None:
        return "null"
    return "number"


def decode_header(value: str, *, max_bytes: int = MAX_HEADER_BYTES) -> dict[str, Any]:
    """Decode a base64 JSON header into a dict, strictly.

    - longer than ``max_bytes`` -> ProtocolError(request_too_large);
    - empty, characters outside the standard base64 alphabet (including URL-safe ``-_``), wrong or
      missing padding, non-canonical encoding, non-UTF-8, invalid JSON, duplicate keys, or JSON that is
      not an object -> ProtocolError(invalid_payload) saying which.

    Surrounding HTTP whitespace (spaces, tabs) is ignored.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(Reason.invalid_payload, "header contains non-ASCII bytes") from None
    if not isinstance(value, str):
        raise ProtocolError(Reason.invalid_payload, f"header must be a string, got {type(value).__name__}")
    if len(value) > max_bytes:
        raise ProtocolError(
            Reason.request_too_large, f"header is {len(value)} characters, more than the limit of {max_bytes}"
        )
    value = value.strip(_HTTP_OWS)
    if not value:
        raise ProtocolError(Reason.invalid_payload, "header is empty")
    if not value.isascii():
        raise ProtocolError(Reason.invalid_payload, "header is not base64: contains non-ASCII characters")
    if "-" in value or "_" in value:
        raise ProtocolError(
            Reason.invalid_payload, "header is not standard base64: URL-safe alphabet ('-' or '_') is not accepted"
        )
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(Reason.invalid_payload, f"header is not valid base64 ({exc})") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise ProtocolError(Reason.invalid_payload, "header is not canonical base64 (non-zero padding bits)")
    return loads_object(raw, reason=Reason.invalid_payload, what="header")


def decode_json_body(body: bytes | str, *, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """Parse a facilitator request body: ProtocolError(request_too_large) over ``max_bytes``,
    ProtocolError(malformed_request) if it is not strict JSON holding an object."""
    size = len(body.encode("utf-8")) if isinstance(body, str) else len(body)
    if size > max_bytes:
        raise ProtocolError(Reason.request_too_large, f"body is {size} bytes, more than the limit of {max_bytes}")
    return loads_object(body, reason=Reason.malformed_request, what="body")
