"""Convert the shared sequential datasets into the comma-separated files the tests and bench read.

Run from the repository root: ``python scripts/make_sequence_data.py /work/shared/data/sequential``.
Writes ``bench/data/pbcseq/pbcseq.csv``, ``bench/data/berka/{transactions,accounts}.csv`` (whole)
and the small slices under ``tests/data/``. The conversion changes representation only:

- pbcseq: drops the R row-name column; ``NA`` becomes an empty field (a missing value).
- berka: ``;``-separated ``.asc`` files to CSV; dates ``YYMMDD`` to ISO ``YYYY-MM-DD``; blank
  ``operation``/``k_symbol`` fields become empty (missing); the partner ``bank``/``account`` columns
  and ``trans_id`` are dropped (identifiers of other parties, not attributes of the account's events).
  Events of one account are kept in file order (the file is sorted by date, ties in ``trans_id`` order).
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl


def pbcseq(src: Path) -> pl.DataFrame:
    df = pl.read_csv(src / "pbcseq" / "survival__pbcseq.csv", infer_schema=False)
    df = df.drop("rownames").with_columns(pl.all().replace("NA", None))
    return df


def berka(src: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    t = pl.read_csv(src / "berka" / "trans_prefix_to_19940330.asc", separator=";", infer_schema=False)
    t = t.with_columns(pl.col("trans_id").cast(pl.Int64), pl.col("date").cast(pl.Int64)).sort(["date", "trans_id"])
    t = t.select(
        "account_id",
        pl.col("date").cast(pl.Utf8).str.strptime(pl.Date, "%y%m%d").dt.strftime("%Y-%m-%d").alias("date"),
        "type",
        pl.col("operation").str.strip_chars().replace("", None),
        "amount",
        "balance",
        pl.col("k_symbol").str.strip_chars().replace("", None),
    )
    a = pl.read_csv(src / "berka" / "account.asc", separator=";", infer_schema=False)
    a = a.select("account_id", "district_id", "frequency")
    return t, a


def main(src: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    (root / "bench/data/pbcseq").mkdir(parents=True, exist_ok=True)
    (root / "bench/data/berka").mkdir(parents=True, exist_ok=True)
    p = pbcseq(src)
    p.write_csv(root / "bench/data/pbcseq/pbcseq.csv")
    p.write_csv(root / "tests/data/pbcseq.csv")
    t, a = berka(src)
    t.write_csv(root / "bench/data/berka/transactions.csv")
    a.write_csv(root / "bench/data/berka/accounts.csv")
    # tests: the 150 accounts with the smallest ids among those with transactions
    ids = t.get_column("account_id").cast(pl.Int64).unique().sort().head(150).cast(pl.Utf8)
    t.filter(pl.col("account_id").is_in(ids.implode())).write_csv(root / "tests/data/berka_transactions.csv")
    a.filter(pl.col("account_id").is_in(ids.implode())).write_csv(root / "tests/data/berka_accounts.csv")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/sequential"))
