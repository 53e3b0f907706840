"""An ML data platform on Dagster: raw daily data to validated features and tracked models."""

import warnings

from dagster import BetaWarning, PreviewWarning

# Single-run backfill policies, partition mappings over missing history and similar beta/preview
# APIs are used on purpose; their notices would otherwise repeat in every run's log.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
