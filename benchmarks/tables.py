"""The benchmarks' shared text table (the JSON line each benchmark prints is its own)."""

from __future__ import annotations


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Rows as a text table; ``columns`` are (header, key, format); missing values are ``-``."""
    cells = [[header for header, _, _ in columns]]
    for row in rows:
        line = []
        for _, key, fmt in columns:
            value = row.get(key)
            line.append(format(value, fmt) if isinstance(value, int | float) else str(value or "-"))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    )
