"""Provenance of the bundled Adult samples (run once; outputs are committed).

Reads the raw UCI Adult train file (no header, ', ' separated, '?' = missing), names the columns
after adult.names (hyphens -> underscores), strips spaces, and writes seeded random samples:
release/demo_data/adult_sample.csv (8,000 rows, the demo) and tests/data/adult_2000.csv.

    python scripts/make_adult_samples.py ../shared/data/tabular/adult/adult-train.csv
"""

import sys

import polars as pl

NAMES = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
    "native_country", "income",
]


def main(path: str) -> None:
    df = pl.read_csv(path, has_header=False, new_columns=NAMES, infer_schema=False)
    df = df.select([pl.col(c).str.strip_chars() for c in NAMES])
    df = df.filter(pl.col("age").is_not_null() & (pl.col("age") != ""))  # the file ends with a blank line
    df.sample(n=8000, seed=20261125, shuffle=True).write_csv("release/demo_data/adult_sample.csv")
    df.sample(n=2000, seed=7, shuffle=True).write_csv("tests/data/adult_2000.csv")
    df.write_csv("/tmp/adult_full.csv")


if __name__ == "__main__":
    main(sys.argv[1])
