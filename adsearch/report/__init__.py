"""Writers that only render the view: `trials.csv` and `pareto.csv`, Markdown, the interactive HTML
page, PNG plots, and the terminal text of `ls`, `show` and the progress lines.

`write_report(dir, spec, rows)` writes them all; `build_report(dir)` from what is on disk.
"""

from adsearch._lazy import lazy_exports

_OWNERS = {
    "write_report": "writer", "build_report": "writer", "csv_text": "writer",
    "markdown": "markdown", "html_page": "html", "plot_front": "plots",
    "study_text": "text", "trial_text": "text", "progress_line": "text",
}
__all__ = list(_OWNERS)
__getattr__, __dir__ = lazy_exports(__name__, _OWNERS)
