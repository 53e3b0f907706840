"""Asset checks: quality, freshness and drift."""
