"""Ledger benchmark: attribution over 1,000,000 settlements on PostgreSQL, and streamed exports' peak memory.

    .venv/bin/python scripts/bench/bench_ledger.py                       # defaults: 1M settlements, 1M lines
    .venv/bin/python scripts/bench/bench_ledger.py --settlements 200000 --export-lines 200000   # quicker

One throwaway PostgreSQL cluster (tests/support/postgres.py) holds two databases, bulk-loaded in the
server with ``INSERT ... SELECT generate_series`` in the shape ``SettlementRepository.confirm`` books:

- ``bench_attribution``: N confirmed settlements (5,000 agents in 50 teams, 200 capabilities, 90 days),
  each with its four journal lines (payment pair + network-fee pair); 1% reversed an hour later.
  ``attribution(...)`` by team/day is timed (three runs, the slowest counts); the target is under 2 s.
  Agent/month and capability/hour are shown for information (their cost grows with the output rows).
- ``bench_export``: settlements whose lines add up to the requested line count. Each format is
  exported by a child process that streams it to a file and reports its own peak RSS
  (``VmHWM``; ``ru_maxrss`` where /proc is missing); the target is under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app.db.engine import make_engine  # noqa: E402
from app.db.schema import create_schema  # noqa: E402
from app.ledger.attribution import attribution  # noqa: E402
from tests.support.postgres import ThrowawayPostgres  # noqa: E402

USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
SIGNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
ATTRIBUTION_TARGET_S = 2.0
MEMORY_TARGET_MB = 300
TARGET_QUERY = ("team", "day")  # the acceptance query; the others show how output size costs

LOAD_SETTLEMENTS = f"""
INSERT INTO settlements (id, network, asset, payer, payee, nonce, value, valid_after, valid_before, signature,
    x402_version, signature_hash, agent_id, team, cost_center, capability_id, provider, state, signer, tx_hash,
    block_number, gas_used, effective_gas_price, created_at, submitted_at, confirmed_at, updated_at)
SELECT g, 'eip155:84532', '{USDC}', '0x' || lpad(to_hex(g % 5000 + 1), 40, '0'),
    '0x' || lpad(to_hex(g % 40 + 100000), 40, '0'), '0x' || lpad(to_hex(g), 64, '0'),
    (1000 + (g::bigint * 7919) % 1000000)::numeric, 0, 99999999999, '0x', 2, '',
    'agent-' || (g % 5000), 'team-' || (g % 50), 'cc-' || (g % 20), 'cap-' || (g % 200), 'prov-' || (g % 40),
    'confirmed', '{SIGNER}', '0x' || lpad(to_hex(g), 64, '0'), g, 50000 + g % 1000, 1000000000 + g % 7,
    t, t, t, t
FROM (SELECT g, timestamptz '2026-01-01 00:00:00+00' + g * (interval '90 days' / :n) AS t
      FROM generate_series(1, :n) AS g) AS series
"""

# The lines carry hashes of the real width but are no hash chain (``x402-settle ledger verify`` would stop at
# the first): a chain is sequential and cannot be built set-based in the server. Attribution and exports,
# which this measures, never read the hashes.
PLACEHOLDER_HASHES = "encode(sha256(convert_to('content' || s.id || v.k, 'UTF8')), 'hex'), " \
                     "encode(sha256(convert_to('chain' || s.id || v.k, 'UTF8')), 'hex')"

LOAD_LINES = f"""
INSERT INTO journal_lines (settlement_id, entry_type, account, account_kind, side, amount, asset, network,
    agent_id, team, cost_center, capability_id, provider, memo, booked_at, content_hash, chain_hash)
SELECT s.id, v.entry_type,
    CASE v.k WHEN 1 THEN 'agent:' || s.agent_id || ':' || 'spend'
             WHEN 2 THEN 'provider:' || s.provider || ':' || 'revenue'
             WHEN 3 THEN 'agent:' || s.agent_id || ':' || 'network_fees'
             ELSE 'facilitator:' || s.signer || ':' || 'gas' END,
    v.account_kind, v.side,
    CASE WHEN v.k <= 2 THEN s.value ELSE s.gas_used * s.effective_gas_price END,
    CASE WHEN v.k <= 2 THEN s.asset ELSE 'native' END,
    s.network, s.agent_id, s.team, s.cost_center, s.capability_id, s.provider, '', s.confirmed_at,
    {PLACEHOLDER_HASHES}
FROM settlements AS s
CROSS JOIN (VALUES (1, 'payment', 'agent_spend', 'debit'), (2, 'payment', 'provider_revenue', 'credit'),
                   (3, 'network_fee', 'agent_fees', 'debit'), (4, 'network_fee', 'facilitator_gas', 'credit'))
    AS v(k, entry_type, account_kind, side)
ORDER BY s.id, v.k
"""

REVERSE_ONE_PERCENT = [
    "UPDATE settlements SET state = 'failed', error_reason = 'reorged', failed_at = confirmed_at + interval '1 hour' "
    "WHERE id % 100 = 0",
    """
    INSERT INTO journal_lines (settlement_id, entry_type, account, account_kind, side, amount, asset, network,
        agent_id, team, cost_center, capability_id, provider, reverses_id, memo, booked_at, content_hash, chain_hash)
    SELECT j.settlement_id, 'reversal', j.account, j.account_kind,
        CASE j.side WHEN 'debit' THEN 'credit' ELSE 'debit' END, j.amount, j.asset, j.network, j.agent_id, j.team,
        j.cost_center, j.capability_id, j.provider, j.id, 'reorged', j.booked_at + interval '1 hour',
        encode(sha256(convert_to('content reversal' || j.id, 'UTF8')), 'hex'),
        encode(sha256(convert_to('chain reversal' || j.id, 'UTF8')), 'hex')
    FROM journal_lines AS j WHERE j.settlement_id % 100 = 0 AND j.reverses_id IS NULL ORDER BY j.id
    """,
]


def load(url: str, settlements: int, *, reversals: bool) -> float:
    engine = make_engine(url)
    started = time.perf_counter()
    create_schema(engine)
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))  # skip FK triggers while loading
        connection.execute(text(LOAD_SETTLEMENTS), {"n": settlements})
        connection.execute(text(LOAD_LINES))
        if reversals:
            for statement in REVERSE_ONE_PERCENT:
                connection.execute(text(statement))
        connection.execute(text("SELECT setval(pg_get_serial_sequence('settlements', 'id'), :n)"), {"n": settlements})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE settlements"))
        connection.execute(text("VACUUM ANALYZE journal_lines"))
    engine.dispose()
    return time.perf_counter() - started


def bench_attribution(url: str) -> dict[str, float]:
    engine = make_engine(url)
    figures: dict[str, float] = {}
    try:
        with engine.connect() as connection:
            lines = connection.execute(text("SELECT count(*) FROM journal_lines")).scalar_one()
            settlements = connection.execute(text("SELECT count(*) FROM settlements")).scalar_one()
        print(f"  data: {settlements:,} settlements, {lines:,} journal lines")
        for group_by, bucket in (("team", "day"), ("agent", "month"), ("capability", "hour")):
            timings = []
            for _ in range(3):
                started = time.perf_counter()
                rows = attribution(engine, group_by=group_by, bucket=bucket)
                timings.append(time.perf_counter() - started)
            total = sum(row.amount for row in rows)
            if (group_by, bucket) == TARGET_QUERY:
                verdict = "ok" if max(timings) < ATTRIBUTION_TARGET_S else "SLOW"
                note = f"[{verdict}, target < {ATTRIBUTION_TARGET_S} s]"
                figures[f"{group_by}/{bucket}"] = max(timings)
            else:
                note = "[informational]"
            print(f"  attribution by {group_by}/{bucket}: first {timings[0]:.2f} s, best {min(timings):.2f} s "
                  f"({len(rows):,} rows, net spend {total:,}) {note}")
    finally:
        engine.dispose()
    return figures


def export_child(url: str, export_format: str, output: str) -> None:
    """Runs in its own process: stream one export to ``output``, print rows, bytes, seconds, peak RSS."""
    from app.ledger.exports import AssetInfo, stream_export

    engine = make_engine(url)
    rows = 0

    def count(n: int) -> None:
        nonlocal rows
        rows += n

    started = time.perf_counter()
    written = 0
    with open(output, "wb") as handle:
        for chunk in stream_export(engine, {USDC.lower(): AssetInfo("USDC", 6)}, format=export_format,
                                   kind="journal", on_rows=count):
            handle.write(chunk)
            written += len(chunk)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "bytes": written, "seconds": seconds, "peak_mb": peak_rss_kb() / 1024}))


def peak_rss_kb() -> int:
    """This process's peak resident set size in kB.

    ``VmHWM`` belongs to the process image, so it starts afresh at exec. ``ru_maxrss`` does not on
    Linux: a child started after the parent's own peak reports the parent's figure. Fallback only.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bench_exports(url: str, formats: list[str], directory: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    for export_format in formats:
        output = directory / f"journal.{export_format}"
        result = subprocess.run(
            [sys.executable, __file__, "--export-child", url, export_format, str(output)],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )
        report = json.loads(result.stdout.strip().splitlines()[-1])
        output.unlink(missing_ok=True)
        verdict = "ok" if report["peak_mb"] < MEMORY_TARGET_MB else "TOO MUCH"
        print(f"  export {export_format:7s}: {report['rows']:,} lines, {report['bytes'] / 2**20:,.0f} MiB in "
              f"{report['seconds']:.1f} s, peak RSS {report['peak_mb']:.0f} MB [{verdict}, target < "
              f"{MEMORY_TARGET_MB} MB]")
        figures[export_format] = report["peak_mb"]
    return figures


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--export-child":
        export_child(*sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settlements", type=int, default=1_000_000, help="settlements for the attribution bench")
    parser.add_argument("--export-lines", type=int, default=1_000_000, help="journal lines to export")
    parser.add_argument("--formats", default="csv,jsonl,parquet")
    parser.add_argument("--skip-attribution", action="store_true")
    parser.add_argument("--skip-export", action="store_true")
    arguments = parser.parse_args()

    failures = 0
    with ThrowawayPostgres() as cluster:
        assert cluster.root is not None
        if not arguments.skip_attribution:
            url = cluster.create_database("bench_attribution")
            print(f"attribution: loading {arguments.settlements:,} settlements ...")
            print(f"  loaded in {load(url, arguments.settlements, reversals=True):.1f} s")
            figures = bench_attribution(url)
            failures += sum(1 for seconds in figures.values() if seconds >= ATTRIBUTION_TARGET_S)
        if not arguments.skip_export:
            url = cluster.create_database("bench_export")
            settlements = -(-arguments.export_lines // 4)  # four lines each
            print(f"export: loading {settlements:,} settlements ({settlements * 4:,} journal lines) ...")
            print(f"  loaded in {load(url, settlements, reversals=False):.1f} s")
            directory = Path(os.environ.get("TMPDIR", "/tmp"))
            figures = bench_exports(url, arguments.formats.split(","), directory)
            failures += sum(1 for mb in figures.values() if mb >= MEMORY_TARGET_MB)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
