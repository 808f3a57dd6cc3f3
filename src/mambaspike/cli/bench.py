"""``mambaspike bench KIND``: the performance measurements of ``mambaspike.bench``."""

from __future__ import annotations

import argparse
import json

from mambaspike.cli.options import Parser, add_threads, set_threads

HELP = "measure speed and memory (see 'mambaspike bench KIND --help')"


def add_parser(sub) -> argparse.ArgumentParser:
    from mambaspike.bench import BENCHES, load

    b = sub.add_parser(
        "bench",
        help=HELP,
        description="Performance measurements; every ratio is measured within one run. "
        "Threads and device are stated in every row.",
    )
    kinds = b.add_subparsers(dest="kind", metavar="KIND", parser_class=Parser)
    kinds.required = True
    for kind in BENCHES:
        module = load(kind)
        k = kinds.add_parser(
            kind,
            help=module.DESCRIPTION,
            description=module.DESCRIPTION,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        k.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
        add_threads(k)
        module.add_arguments(k)
    return b


def run(args: argparse.Namespace) -> int:
    from mambaspike.bench import environment, format_table, load

    set_threads(args)
    rows = []
    for row in load(args.kind).run(args):
        row = {**row, **environment(row.pop("device", "cpu"))}
        if args.json:
            print(json.dumps(row), flush=True)
        rows.append(row)
    if not args.json:
        print(format_table(rows))
    return 0
