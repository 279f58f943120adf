"""Audits of synthetic graphs: the unit of privacy is one edge (DESIGN.md section 4, rule 3), so the
membership attacks, canaries and targets are single real edges. The entry point is
``audits.graph.suite.run_graph_audits``; its results feed the same gate as the tabular audits, and
``audits.graph.plots.degree_distribution_svg`` draws the degree figure the report embeds.
"""
