"""The report as PDF: the same HTML, laid out for A4 by weasyprint."""

from __future__ import annotations

import logging


def render_pdf(html_text: str) -> bytes:
    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    pdf: bytes = weasyprint.HTML(string=html_text).write_pdf()
    return pdf
