"""Graph generators: edge-level DP synthetic graphs over a public (or bought) node set."""
