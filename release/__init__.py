"""Workflow and trust: workspace, runs, gate, stewards, approvals, bundles, verification, CLI."""
