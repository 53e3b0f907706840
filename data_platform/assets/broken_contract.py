"""A dataset whose contract does not validate: its assets stay in the catalog, marked broken.

The raw and cleaned assets keep their keys (and their history) in group `broken_contracts`; their
description and metadata list every `file:line` problem; materializing one fails with those
problems, and the check `contract_is_valid` fails with them. Nothing else in the platform depends
on the file being right, so every other dataset, the ML graph and the automation keep running.
"""

from __future__ import annotations

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetsDefinition,
    AutomationCondition,
    CodeReferencesMetadataValue,
    Definitions,
    Failure,
    LocalFileCodeReference,
    MetadataValue,
    asset,
    asset_check,
)

from data_platform.datasets import BrokenContract

GROUP = "broken_contracts"
CHECK = "contract_is_valid"


def broken_contract_definitions(broken: BrokenContract) -> Definitions:
    raw = _placeholder(broken, "raw", [])
    cleaned = _placeholder(broken, "cleaned", [raw.key])
    return Definitions(assets=[raw, cleaned], asset_checks=[_check(broken, raw), _check(broken, cleaned)])


def problems_markdown(broken: BrokenContract) -> str:
    return "\n".join(f"- `{problem}`" for problem in broken.problems)


def _metadata(broken: BrokenContract) -> dict:
    first = broken.problems[0].line if broken.problems else 1
    return {
        "dagster/code_references": CodeReferencesMetadataValue(
            code_references=[LocalFileCodeReference(file_path=str(broken.path), line_number=first)]),
        "contract_problems": MetadataValue.md(problems_markdown(broken)),
        "contract_file": MetadataValue.path(str(broken.path)),
        "problem_count": len(broken.problems),
    }


def _placeholder(broken: BrokenContract, layer: str, deps: list) -> AssetsDefinition:
    @asset(
        key=[layer, broken.name],
        group_name=GROUP,
        deps=deps,
        description=f"BROKEN CONTRACT: {broken.path.name} does not validate, so the platform does not build "
                    f"this dataset until the file is fixed (then Reload definitions). Every other dataset "
                    f"keeps running.\n\n{problems_markdown(broken)}",
        kinds={"odcs"},
        tags={"data_platform/contract": "broken"},
        metadata=_metadata(broken),
    )
    def placeholder() -> None:
        raise Failure(description=broken.report(), metadata=_metadata(broken), allow_retries=False)

    return placeholder


def _check(broken: BrokenContract, placeholder: AssetsDefinition):
    @asset_check(
        asset=placeholder, name=CHECK, blocking=True,
        # The automation sensor runs it once when the contract breaks, so its failure shows at once.
        automation_condition=AutomationCondition.initial_evaluation(),
        description=f"Asserts that {broken.path.name} validates (ODCS schema and the platform profile). "
                    "Fails while the file has problems; each is listed with its file and line.",
    )
    def contract_is_valid() -> AssetCheckResult:
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, description=broken.report(),
                                metadata=_metadata(broken))

    return contract_is_valid
