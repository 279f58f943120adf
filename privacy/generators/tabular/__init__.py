"""DP generators for tables; ``registry`` maps names to classes."""
