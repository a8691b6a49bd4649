"""Reading run folders in tests (importable from every test module: tests/ is on sys.path)."""

import json

from agents.base import is_timing


class SimulatedKill(Exception):
    """Raised inside a run to stand in for a killed process."""


def only_run_dir(out_dir, kind="agent"):
    """The single run folder of ``kind`` under an ``--out`` root."""
    (run_dir,) = out_dir.glob(f"{kind}/*/*")
    return run_dir


def read_metrics(run_dir, drop_timing=True):
    """``metrics.jsonl`` as dicts, without wall-time metrics unless ``drop_timing=False``."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    if drop_timing:
        records = [{k: v for k, v in r.items() if not is_timing(k)} for r in records]
    return records
