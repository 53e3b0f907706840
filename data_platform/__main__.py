"""Command line: `python -m data_platform demo|catalog|drift-report|dataset|table|training-set|serve`."""

from __future__ import annotations

import argparse
import sys

from data_platform.storage.commands import add_table_commands, run_table_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the whole graph over Aug-Dec 2013 step by step and summarize")
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
    add_dataset_commands(commands)
    add_table_commands(commands)
    training = commands.add_parser(
        "training-set", help="read a registered model version's training and holdout sets back from the tables at "
                             "the versions it was trained on, and check them against its recorded digests")
    training.add_argument("model_version", help="registered model version (see the MLflow UI or `ml/delay_model`)")
    training.add_argument("--output", metavar="DIR", help="also write both sets as Parquet files into DIR")
    serve = commands.add_parser("serve", help="start the online scoring service (FastAPI)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if args.command == "serve":
        from data_platform.serving.app import serve as run_service

        return run_service(args.host, args.port)
    if args.command == "demo":
        from data_platform.demo import run_demo

        return run_demo()
    if args.command == "catalog":
        from data_platform.catalog import export_catalog

        return export_catalog(args.output)
    if args.command == "drift-report":
        from data_platform.drift import report_command

        return report_command(args.day, args.check, args.workspace)
    if args.command == "dataset":
        return run_dataset_command(args)
    if args.command == "table":
        return run_table_command(args)
    if args.command == "training-set":
        from data_platform.training_set import read_back_command

        return read_back_command(args.model_version, args.output)
    return 2


# --- dataset new | check | publish: declaring datasets as contract files (data_platform/datasets/scaffold.py) ---

def add_dataset_commands(commands) -> None:
    dataset = commands.add_parser("dataset", help="draft a dataset contract from a sample file, validate contracts, "
                                                  "or publish the stored tables' contracts")
    actions = dataset.add_subparsers(dest="dataset_command", required=True)
    new = actions.add_parser(
        "new", help="write a draft NAME.odcs.yaml from a sample file into DATA_PLATFORM_DATASETS_DIR "
                    "(else the last contracts folder, the repository's datasets/ by default) and print its path")
    new.add_argument("name", help="dataset name: lower case, digits and _ (names the tables and assets)")
    new.add_argument("--from", dest="source", required=True, metavar="PATH", help="sample file (.csv, .parquet)")
    new.add_argument("--time-column", help="the column whose date is each row's daily partition "
                                           "(default: the first date column without empty values)")
    new.add_argument("--time-format", help="how --time-column is written, in strptime codes (e.g. %%Y/%%m/%%d); "
                                           "default ISO 8601")
    check = actions.add_parser(
        "check", help="validate contracts (every one when no FILE is given) like the code location does; "
                      "exit code 1 on problems")
    check.add_argument("files", nargs="*", metavar="FILE")
    publish = actions.add_parser(
        "publish", help="write the ODCS contract of each stored table (raw, cleaned, quarantine, ML) as it is "
                        "stored, to $DATA_PLATFORM_HOME/contracts/<layer>.<table>.odcs.yaml; prints each path")
    publish.add_argument("names", nargs="*", metavar="NAME",
                         help="datasets (their three tables) or tables (cleaned.flights); default: every table")
    publish.add_argument("--output", metavar="DIR", help="folder to write to")


def run_dataset_command(args) -> int:
    from data_platform.datasets.scaffold import ScaffoldError, check_contracts, new_contract

    if args.dataset_command == "check":
        return check_contracts(args.files or None)
    if args.dataset_command == "publish":
        from data_platform.publish import publish_command

        return publish_command(args.names, args.output)
    try:
        path = new_contract(args.name, args.source, args.time_column, args.time_format)
    except ScaffoldError as error:
        print(f"dataset new: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
