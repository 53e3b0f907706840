"""Command line: `python -m data_platform demo|catalog|drift-report`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the whole graph over Oct-Dec 2013 step by step and summarize")
    catalog = commands.add_parser(
        "catalog", help="write the asset catalog (definitions + instance history) as JSON Lines"
    )
    catalog.add_argument(
        "--output", help="file to write, '-' for stdout (default: $DATA_PLATFORM_HOME/catalog.jsonl)"
    )
    report = commands.add_parser(
        "drift-report", help="render a partition's stored drift report as HTML, or rebuild the Evidently workspace"
    )
    report.add_argument("day", nargs="?", help="partition (YYYY-MM-DD) whose stored report to render")
    report.add_argument("--check", default="feature_drift", help="feature_drift (default) or prediction_drift")
    report.add_argument("--workspace", action="store_true", help="rebuild the workspace that `evidently ui` shows")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from data_platform.demo import run_demo

        return run_demo()
    if args.command == "catalog":
        from data_platform.catalog import export_catalog

        return export_catalog(args.output)
    if args.command == "drift-report":
        from data_platform.drift import report_command

        return report_command(args.day, args.check, args.workspace)
    return 2


if __name__ == "__main__":
    sys.exit(main())
