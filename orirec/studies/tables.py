"""The studies' tables: rows of numbers as markdown, with the columns each study declares."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["markdown_table"]


def markdown_table(results: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """Rows as a markdown table; ``columns`` are (key, header, format) triples (e.g. the comparison's
    ``orirec.studies.compare.COLUMNS``); missing or non-finite values show as '–'."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    lines = [head, sep]
    for r in results:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            ok = v is not None and not (isinstance(v, float) and not np.isfinite(v))
            cells.append(fmt.format(v) if ok else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
