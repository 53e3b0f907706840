"""Command line: `python -m data_platform demo|catalog`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="materialize January 2013 through every asset and summarize")
    demo.add_argument("--first", default="2013-01-01")
    demo.add_argument("--last", default="2013-01-31")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from data_platform.demo import run_demo

        return run_demo(args.first, args.last)
    return 2


if __name__ == "__main__":
    sys.exit(main())
