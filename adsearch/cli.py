"""`adsearch` command line: a thin layer over the library.

User errors (`AdsearchError`, an invalid spec) are printed as plain lines without a traceback;
an invalid spec exits 2, other user errors exit 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
import yaml
from rich.console import Console

from adsearch.errors import AdsearchError
from adsearch.spec import SpecError, json_schema, load_spec

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Search activation-density pruning schedules; read the Pareto report.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SpecArg = typer.Argument(..., help="study spec (YAML)", show_default=False)
SetOpt = typer.Option([], "--set", help="override a spec field: --set train.epochs=1 (value read as YAML)")


def parse_overrides(items: list[str]) -> dict:
    """`path=value` pairs, each value read as YAML (so `1`, `0.5`, `[1, 2]`, `cpu` all work)."""
    overrides = {}
    for item in items:
        path, sep, text = item.partition("=")
        if not sep or not path.strip():
            raise SpecError("--set", [f"{item!r}: expected dotted.path=value, e.g. train.epochs=1"])
        try:
            overrides[path.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise SpecError("--set", [f"{item!r}: the value is not valid YAML"]) from None
    return overrides


@app.command()
def validate(spec: Path = SpecArg, set_: list[str] = SetOpt) -> None:
    """Check a spec: print OK or every error (exit 2)."""
    s = load_spec(spec, parse_overrides(set_))
    out.print(f"OK: {spec} (study {s.name!r}, {s.search.trials} trials over "
              f"{len(s.search.space)} dimension(s))")


@app.command()
def schema() -> None:
    """Print the JSON schema of a study spec."""
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@app.command()
def run(
    spec: Path = SpecArg,
    set_: list[str] = SetOpt,
    reports: Path = typer.Option(Path("reports"), help="where study directories are made"),
    address: Optional[str] = typer.Option(None, help="Ray cluster: auto, host:port or ray://host:10001"),
    fresh: bool = typer.Option(False, help="delete an existing study of this name and start again"),
) -> None:
    """Run a study: the baseline, then the search; write reports/<name>/."""
    from adsearch.study import run_study

    s = load_spec(spec, parse_overrides(set_))
    result = run_study(s, reports_dir=reports, address=address, fresh=fresh, say=out.print)
    out.print(f"report: {result.files['report.md']}")


@app.command()
def train(spec: Path = SpecArg, set_: list[str] = SetOpt) -> None:
    """Train one trial of the spec's base recipe (no search), showing each epoch."""
    from adsearch.trainer import run_trial

    s = load_spec(spec, parse_overrides(set_))
    result = run_trial(s, report=lambda metrics, _: out.print(_epoch_line(metrics)))
    out.print(f"done: accuracy {result['accuracy']:.2%}, params {result['params']:,}, "
              f"MACs {result['macs']:,}, train MACs {result['train_macs']:.3g}, "
              f"{result['wall_s']:.1f} s, widths {result['widths']}")


def _epoch_line(m: dict) -> str:
    dens = " ".join(f"{v:.2f}" for v in m["density"].values())
    return (f"epoch {m['epoch']:>3}  loss {m['train_loss']:.4f}  acc {m['accuracy']:.2%}  "
            f"params {m['params']:,}  MACs {m['macs']:,}  widths {m['widths']}  density [{dens}]")


def main() -> None:
    try:
        app()
    except SpecError as exc:
        err.print(str(exc), markup=False)
        raise SystemExit(2) from None
    except AdsearchError as exc:
        err.print(f"error: {exc}", markup=False)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
