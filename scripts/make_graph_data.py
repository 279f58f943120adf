"""Derive the graph test and benchmark files from the copies of ../shared/data/graph.

The only conversion: SNAP's email-Eu-core department labels ("node dept" pairs, no header) become
a CSV node table with a header (``node,dept``), the format ``register --nodes`` reads. The edge
lists are used as SNAP ships them.

    .venv/bin/python scripts/make_graph_data.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAIRS = (
    (ROOT / "tests/data/graph/email-Eu-core-department-labels.txt", ROOT / "tests/data/graph/email_departments.csv"),
    (ROOT / "bench/data/graph/email_eu_core/email-Eu-core-department-labels.txt",
     ROOT / "bench/data/graph/email_eu_core/departments.csv"),
)


def convert(src: Path, dst: Path) -> int:
    rows = []
    for line in src.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            rows.append(f"{int(parts[0])},{int(parts[1])}")
    dst.write_text("node,dept\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return len(rows)


if __name__ == "__main__":
    for src, dst in PAIRS:
        print(f"{dst.relative_to(ROOT)}: {convert(src, dst)} nodes")
