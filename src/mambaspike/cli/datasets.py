"""``mambaspike datasets``: every registered data set, its layout, and whether it is present."""

from __future__ import annotations

import argparse
import json

HELP = "list every data set, its expected layout, and whether it is present under --data-dir"


def add_parser(sub) -> argparse.ArgumentParser:
    d = sub.add_parser(
        "datasets",
        help=HELP,
        description="List the registered data sets with the folder layout each expects under --data-dir, "
        "where to obtain it, and (if present) how many train/test samples it holds.",
    )
    d.add_argument(
        "--data-dir", default=None, help="where data sets live (default: $MAMBASPIKE_DATA or ~/.cache/mambaspike)"
    )
    d.add_argument("--json", action="store_true", help="one JSON object per data set instead of text")
    return d


def run(args: argparse.Namespace) -> int:
    from mambaspike.data import DEFAULT_DATA_DIR, dataset_status

    data_dir = DEFAULT_DATA_DIR if args.data_dir is None else args.data_dir
    for row in dataset_status(data_dir):
        if args.json:
            print(json.dumps(row))
            continue
        print(
            f"{row['name']:<14} {row['status']}\n  {row['summary']}\n"
            f"  layout: {row['layout']}\n  source: {row['source']}"
        )
    return 0
