"""The rows on screen as CSV or JSON (``s``): the keys of ``list --json``, plus the row's status."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from sockscope.render.records import BASE_KEYS, INFO_KEYS, endpoint_record
from sockscope.tui.model import Row

EXTRA_KEYS = ("status", "age", "process")


def _record(row: Row, now: float) -> dict[str, object]:
    rec = endpoint_record(row.endpoint, info=True)
    end = row.closed_at if row.closed_at is not None else now
    owner = row.owner
    rec.update(
        status=row.status.name.lower(),
        age=round(end - row.first_seen, 6),
        process=None if owner is None else {"pid": owner.pid, "name": owner.name},
    )
    return rec


def render_rows(rows: Iterable[Row], fmt: str, now: float, header: dict[str, object] | None = None) -> str:
    """``fmt`` is ``json`` (a document: ``header`` fields, then ``endpoints``) or ``csv``."""
    records = [_record(r, now) for r in rows]
    if fmt == "json":
        doc = dict(header or {})
        doc["count"] = len(records)
        doc["endpoints"] = records
        return json.dumps(doc, indent=1) + "\n"
    keys = [*BASE_KEYS, *INFO_KEYS, *EXTRA_KEYS]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rec in records:
        owners = rec.get("owners") or []
        assert isinstance(owners, list)
        rec["owners"] = ";".join(f"{o['pid']}/{o['name']}/{o['fd']}" for o in owners)
        proc = rec.get("process")
        rec["process"] = f"{proc['pid']}/{proc['name']}" if isinstance(proc, dict) else ""
        writer.writerow({k: "" if rec.get(k) is None else rec.get(k) for k in keys})
    return out.getvalue()


def format_for(path: str) -> str:
    """``json`` for a ``.json`` file name, else ``csv``."""
    return "json" if path.lower().endswith(".json") else "csv"
