"""Audits of sequential synthetic data: the unit of privacy and of every measurement is one entity
with all its events (DESIGN.md section 4, rule 3). The entry point is
``audits.sequential.suite.run_sequence_audits``; its results feed the same gate as the tabular audits.
"""
