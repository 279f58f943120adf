"""DP generators, one sub-package per data kind."""
