"""Finance's HTTP reads of the ledger: attribution, settlements, exports. All need the finance scope.

Thin: parse, call the ledger module, map its errors to :class:`BadRequest`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.engine import Engine

from app.access.dependencies import require_scope
from app.access.models import Scope
from app.config import Settings
from app.db.clock import utc_now
from app.deps import get_engine, get_settings
from app.errors import BadRequest, Forbidden, Unauthorized, error_responses
from app.ledger.attribution import AttributionQueryError, attribution, parse_bucket, parse_group_by
from app.ledger.exports import ExportError, asset_table_from_settings, prepare_export
from app.ledger.schemas import AttributionOut, AttributionRowOut, SettlementOut, SettlementPageOut
from app.ledger.settlements import (
    DEFAULT_LIMIT,
    SettlementFilters,
    SettlementQuery,
    SettlementQueryError,
)

router = APIRouter(prefix="/ledger", tags=["ledger"], dependencies=[Depends(require_scope(Scope.FINANCE))])

From = Annotated[datetime | None, Query(alias="from", description="inclusive start, ISO-8601 (naive = UTC)")]
To = Annotated[datetime | None, Query(alias="to", description="exclusive end, ISO-8601 (naive = UTC)")]
States = Annotated[list[str] | None, Query(alias="state", description="settlement states, repeated or comma-separated")]


_REFUSED = error_responses(BadRequest, Unauthorized, Forbidden)


@router.get("/attribution", response_model=AttributionOut, responses=_REFUSED)
def get_attribution(
    engine: Annotated[Engine, Depends(get_engine)],
    group_by: Annotated[str, Query(description="agent | team | cost_center | capability | provider")] = "agent",
    bucket: Annotated[str, Query(description="hour | day | month")] = "day",
    start: From = None,
    end: To = None,
    state: States = None,
) -> AttributionOut:
    """Net spend, settlement count and network fees per group and UTC time bucket (atomic units as strings)."""
    try:
        group = parse_group_by(group_by)
        size = parse_bucket(bucket)
        rows = attribution(engine, group_by=group, bucket=size, start=start, end=end, states=state)
    except AttributionQueryError as error:
        raise BadRequest(str(error)) from None
    return AttributionOut(group_by=group.value, bucket=size.value, rows=[AttributionRowOut.of(row) for row in rows])


@router.get("/settlements", response_model=SettlementPageOut, responses=_REFUSED)
def list_settlements(
    engine: Annotated[Engine, Depends(get_engine)],
    agent_id: str | None = None,
    team: str | None = None,
    capability_id: str | None = None,
    provider: str | None = None,
    state: str | None = None,
    network: str | None = None,
    payer: str | None = None,
    start: From = None,
    end: To = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> SettlementPageOut:
    """Settlements by id, filtered; pass ``nextCursor`` back as ``cursor`` for the next page (null at the end)."""
    filters = SettlementFilters(agent_id=agent_id, team=team, capability_id=capability_id, provider=provider,
                                state=state, network=network, payer=payer, created_from=start, created_to=end)
    try:
        page = SettlementQuery(engine).page(filters, cursor=cursor, limit=limit)
    except SettlementQueryError as error:
        raise BadRequest(str(error)) from None
    return SettlementPageOut(items=[SettlementOut.of(item) for item in page.items], next_cursor=page.next_cursor)


_EXPORT_FILE = {"description": "the export file, streamed", "content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/x-ndjson": {"schema": {"type": "string"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}}


@router.get("/export", response_class=StreamingResponse, responses={200: _EXPORT_FILE, **_REFUSED})
def export(
    engine: Annotated[Engine, Depends(get_engine)],
    format: Annotated[str, Query(description="csv | jsonl | parquet")] = "csv",
    kind: Annotated[str, Query(description="journal | rollup")] = "journal",
    start: From = None,
    end: To = None,
    group_by: Annotated[str, Query(description="rollup only")] = "agent",
    bucket: Annotated[str, Query(description="rollup only")] = "day",
    state: States = None,
    settings: Settings = Depends(get_settings),
) -> StreamingResponse:
    """A streamed file with the columns documented in docs/export-schema.md."""
    try:
        request = prepare_export(engine, asset_table_from_settings(settings), format=format,
                                 kind=kind, start=start, end=end, group_by=group_by, bucket=bucket, states=state)
    except ExportError as error:
        raise BadRequest(str(error)) from None
    filename = request.filename(utc_now())
    return StreamingResponse(
        request.chunks(), media_type=request.media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
