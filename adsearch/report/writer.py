"""The study report: `trials.csv`, `pareto.csv`, `report.md`, `report.html` and the plots in `plots/`.

`write_report(study_dir, spec, rows)` computes the study's view once (`adsearch.results.view.report_view`:
the front, the baseline, the recommended trial, the state counts) and has the writers render it:
`markdown` (Markdown), `html` (the interactive page), `plots` (PNG); the CSV tables are
written here, one `TrialRow.flat` per line. Every file is written to a temporary file in its own
directory and moved into place (`results.study_dir.StudyDir.write`), so a reader never sees half a file.
The Pareto front is taken over `spec.search.objectives` among all completed rows, the baseline
included: a search trial the baseline dominates is not a trade-off worth reporting.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from adsearch.report.plots import plot_front
from adsearch.results.reading import StudyRecord, read_study
from adsearch.results.study_dir import StudyDir, spec_text
from adsearch.report.html import html_page
from adsearch.report.markdown import markdown
from adsearch.results.rows import TrialRow
from adsearch.spec.study_spec import StudySpec
from adsearch.results.view import ReportView, report_view

STATES = ("done", "running", "interrupted")


def write_report(study_dir: Path | str | StudyDir, spec: StudySpec, rows: Sequence[TrialRow], *,
                 state: str = "done") -> dict[str, Path]:
    """Write the tables, plots and reports of a study into `study_dir`.

    Args:
        study_dir: the study's directory (made if missing).
        spec: the study spec (objectives, search space, report settings).
        rows: one `TrialRow` per trial (see `adsearch.results.reading.collect_rows`), in any order.
        state: 'done', 'running' or 'interrupted', shown in the reports' titles.

    Returns:
        The files written, by their path relative to `study_dir` ('trials.csv', 'pareto.csv',
        'report.md', 'report.html', 'plots/pareto_params.png', ...).

    Raises:
        ValueError: for an unknown `state`.
    """
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, got {state!r}")
    directory = study_dir if isinstance(study_dir, StudyDir) else StudyDir(study_dir)
    view = report_view(spec, rows, state, directory.path)
    files: dict[str, Path] = {}

    def put(name: str, content) -> None:
        files[name] = directory.write(name, content)

    put("trials.csv", csv_text(view.rows, view.paths))
    put("pareto.csv", csv_text(view.front_rows, view.paths, columns=table_columns(view.rows, view.paths)))
    for cost in view.costs:
        put(f"plots/pareto_{cost}.png", lambda p, c=cost: plot_front(p, view, c))
    put("report.md", markdown(view, plots=files))
    put("report.html", html_page(view, _spec_text(directory, view)))
    return files


def build_report(study_dir: Path | str) -> tuple[StudyRecord, dict[str, Path]]:
    """(Re)build the report of the study in `study_dir` from what is on disk: any state, running too.

    Returns:
        The study as read, and the files written (see `write_report`).

    Raises:
        StudyDirError: no study there (the message lists the studies next to it), or a file of
            it that cannot be read.
    """
    record = read_study(study_dir)
    return record, write_report(record.study_dir, record.spec, record.rows, state=record.state)


def _spec_text(directory: StudyDir, view: ReportView) -> str:
    """The study's spec.yaml as written (its digest line included), else the spec as YAML."""
    path = directory.spec_file
    return path.read_text() if path.is_file() else spec_text(view.spec)


# --- tables ----------------------------------------------------------------------------------


def table_columns(rows: Sequence[TrialRow], space: Sequence[str] = ()) -> list[str]:
    """The columns of trials.csv and pareto.csv: number, role, state, error, `param:<path>` for the
    searched paths (`space` first, then any other path a row has), the metrics in `METRICS`
    order, gpu_ids, widths, base_widths."""
    paths = list(dict.fromkeys([*space, *(p for r in rows for p in r.settings)]))
    return list(TrialRow(number=0).flat(paths))


def csv_text(rows: Sequence[TrialRow], space: Sequence[str] = (), *, columns: Sequence[str] | None = None) -> str:
    """Rows as CSV (header `table_columns(rows, space)` unless `columns` is given): lists and
    mappings as JSON text, None and non-finite numbers empty."""
    columns = list(columns) if columns is not None else table_columns(rows, space)
    paths = [c.removeprefix("param:") for c in columns if c.startswith("param:")]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        flat = row.flat(paths)
        writer.writerow([_cell(flat.get(c)) for c in columns])
    return out.getvalue()


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)
