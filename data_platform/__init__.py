"""An ML data platform on Dagster: raw daily data to validated features and tracked models."""
