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
    catalog = commands.add_parser(
        "catalog", help="write the asset catalog (definitions + instance history) as JSON Lines"
    )
    catalog.add_argument(
        "--output", help="file to write, '-' for stdout (default: $DATA_PLATFORM_HOME/catalog.jsonl)"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from data_platform.demo import run_demo

        return run_demo(args.first, args.last)
    if args.command == "catalog":
        from data_platform.catalog import export_catalog

        return export_catalog(args.output)
    return 2


if __name__ == "__main__":
    sys.exit(main())
