"""The `triggerscope` command: a thin layer that parses arguments and calls the library."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from triggerscope.commands import COMMANDS
from triggerscope.errors import TriggerscopeError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triggerscope", description="Audit semantic backdoors in language models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Parse and run; user errors become one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except TriggerscopeError as err:
        print(f"triggerscope: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("triggerscope: interrupted", file=sys.stderr)
        return 130


def main() -> None:
    sys.exit(run_cli())


if __name__ == "__main__":
    main()
