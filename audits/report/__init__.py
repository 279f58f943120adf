"""The audit report: the HTML page, its figures, its first screen and its methods appendix.

``render_html(document, figures, extras)`` draws ``report.html``; ``first_screen`` is the same
decision as data, for the terminal (``synthgate review``); ``data_figures`` builds the figures that
need the real data, once, when a run is audited.
"""

from audits.report.figures import (
    Figure,
    data_figures,
    document_figures,
    figures_document,
    load_figures_document,
)
from audits.report.methods import library_versions
from audits.report.page import render_html
from audits.report.summary import FirstScreen, ReportExtras, first_screen

__all__ = [
    "Figure",
    "FirstScreen",
    "ReportExtras",
    "data_figures",
    "document_figures",
    "figures_document",
    "first_screen",
    "library_versions",
    "load_figures_document",
    "render_html",
]
