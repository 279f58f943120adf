"""DP generators for sequential data: the unit of privacy is one entity with all its events."""
