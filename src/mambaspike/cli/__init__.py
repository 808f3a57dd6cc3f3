"""The ``mambaspike`` command line: one module per command in ``COMMANDS``, each with ``HELP`` (its line in
``mambaspike --help``), ``add_parser(subparsers)`` and ``run(args) -> exit status``; the options several
commands share are in :mod:`mambaspike.cli.options`.

Errors caused by options, data or files are printed on one line (``mambaspike <cmd>: error: ...``)
with a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys

from mambaspike._version import __version__
from mambaspike.cli import ablate, bench, compare, datasets, export, robustness, sweep, train
from mambaspike.cli import eval as evaluate
from mambaspike.cli.options import Parser
from mambaspike.errors import MambaspikeError

COMMANDS = {
    "train": train,
    "eval": evaluate,
    "bench": bench,
    "robustness": robustness,
    "compare": compare,
    "ablate": ablate,
    "export": export,
    "datasets": datasets,
    "sweep": sweep,
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; given ``command``, only that command's options are built (the others are listed
    with their help line), so ``mambaspike --help`` and one command's parser import only what they need."""
    parser = Parser(
        prog="mambaspike",
        description="Spiking front-end + Mamba backbone for event-based and temporal data.",
    )
    parser.add_argument("--version", action="version", version=f"mambaspike {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, module in COMMANDS.items():
        if command is None or name == command:
            module.add_parser(sub)
        else:
            sub.add_parser(name, help=module.HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # top-level options take no value, so the first other word is the command
    command = next((a for a in argv if not a.startswith("-")), "")
    args = build_parser(command).parse_args(argv)
    from mambaspike.data.errors import DatasetError  # after parsing: it imports the data layer (torch)
    from mambaspike.training.allocator import keep_freed_memory

    try:
        keep_freed_memory()  # large tensors reuse freed heap instead of fresh mmaps (MAMBASPIKE_MALLOC)
        return COMMANDS[args.command].run(args)
    except (MambaspikeError, DatasetError) as e:
        print(f"mambaspike {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
