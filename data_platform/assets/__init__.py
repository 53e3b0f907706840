"""Assets by layer: raw, cleaned, features, ml."""
