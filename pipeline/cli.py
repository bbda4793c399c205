"""The `trialpipe` command line (interface.md)."""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any

import click

from pipeline.config import ConfigError, Paths, load_study


class RunFailed(Exception):
    """The run itself could not complete (exit status non-zero, one-line reason)."""


def _silence_finalization() -> None:
    """After the command's last word, stderr goes to /dev/null for the interpreter's finalization.

    With Great Expectations and duckdb-engine both imported, DuckDB's bindings (nanobind) print a
    "leaked instances" report of its type constants as the interpreter tears the modules down,
    after every command: noise that buries the one-line reason a user reads. Registered first, this
    runs after every other exit handler; what they print still shows.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


atexit.register(_silence_finalization)


def one_line(text: str) -> str:
    """The first non-empty line of a message (DuckDB's span several: the query, a caret, hints)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


def _reason(exc: Exception) -> str | None:
    """The one-line reason for an error that ends the run, None for a bug (which keeps its traceback)."""
    if isinstance(exc, (ConfigError, RunFailed, OSError)):
        return str(exc)
    duckdb = sys.modules.get("duckdb")  # imported only by the commands: no DuckDB error without it
    if duckdb is not None and isinstance(exc, duckdb.Error):
        return one_line(str(exc))
    return None


class OneLineError(click.ClickException):
    """A click error shown as one line `trialpipe: <message>` on stderr (no usage block, no hint)."""

    def show(self, file: Any = None) -> None:
        click.echo(f"trialpipe: {self.format_message()}", file=file, err=file is None)


class OneLineUsageError(OneLineError):
    exit_code = 2  # as click's UsageError


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except (click.exceptions.NoArgsIsHelpError, OneLineError):
        raise  # bare `trialpipe` shows the help; an error already converted stays as it is
    except click.ClickException as exc:
        message = " ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
        raise (OneLineUsageError if isinstance(exc, click.UsageError) else OneLineError)(message) from exc


class TrialpipeGroup(click.Group):
    """The command group, with usage errors (bad option values, missing arguments) as one stderr line."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        with _one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_errors():
            return super().invoke(ctx)


def _parse_as_of(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 timestamp") from exc
    if ts.tzinfo is None:
        raise click.BadParameter("give the cutoff with an offset (Z or ±hh:mm)")
    return ts


#: the common options (interface.md), accepted before the command (`trialpipe --warehouse w derive`) or after it
PATH_DEFAULTS = {"study_path": Path("study.toml"), "landing": Path("landing"), "warehouse": Path("warehouse")}


def path_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for name, flag, text in reversed([
        ("study_path", "--study", "Study configuration (TOML)."),
        ("landing", "--landing", "Landing zone: one folder per site."),
        ("warehouse", "--warehouse", "Warehouse: event log, quarantine, trial.duckdb."),
    ]):
        fn = click.option(flag, name, type=click.Path(path_type=Path), default=None,
                          help=f"{text} [default: {PATH_DEFAULTS[name]}]")(fn)
    return fn


def _resolve(ctx: click.Context, name: str, given: Path | None) -> Path:
    """The option after the command, else the one before it, else the default."""
    before = ctx.parent.params.get(name) if ctx.parent is not None else None
    return given or before or PATH_DEFAULTS[name]


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    @path_options
    @wraps(fn)
    def wrapper(study_path: Path | None, landing: Path | None, warehouse: Path | None, **kw: Any) -> Any:
        ctx = click.get_current_context()
        study_path, landing, warehouse = (_resolve(ctx, n, v) for n, v in
                                          (("study_path", study_path), ("landing", landing), ("warehouse", warehouse)))
        paths = Paths(study_path, landing, warehouse)
        try:
            return fn(paths=paths, **kw)
        except Exception as exc:
            reason = _reason(exc)
            if reason is None:
                raise
            click.echo(f"trialpipe: {reason}", err=True)
            sys.exit(1)

    return wrapper


unverified_option = click.option(
    "--accept-unverified", "accept_unverified", is_flag=True,
    help="Run even though `trialpipe verify` fails (the choice is recorded in the warehouse).")


def require_verified(paths: Paths, command: str, accept_unverified: bool) -> None:
    """Refuse to run `command` on a log that fails verification, unless the user deliberately goes on."""
    from pipeline.store.audit import record_unverified, verify

    result = verify(paths)
    if result.ok:
        return
    first, more = result.problems[0], len(result.problems) - 1
    if not accept_unverified:
        also = f" (and {more} more)" if more else ""
        raise RunFailed(f"{command} refused: the log does not verify: {first}{also}; `trialpipe verify` lists "
                        "the problems, --accept-unverified goes on deliberately (and is recorded)")
    where = record_unverified(paths, command, result)
    click.echo(f"trialpipe: warning: {command} runs on a log that does not verify ({len(result.problems)} "
               f"problem(s), first: {first}); this choice is recorded in {where}", err=True)


as_of_option = click.option("--as-of", "as_of", callback=_parse_as_of, default=None,
                            help="Only events ingested at or before this instant (ISO-8601 with offset).")


@click.group(cls=TrialpipeGroup)
@click.version_option(package_name="trialpipe")
@path_options
def main(study_path: Path | None, landing: Path | None, warehouse: Path | None) -> None:
    """trialpipe: validated, append-only event log and derivations for a multi-site trial."""


@main.command()
@common
def ingest(paths: Paths) -> None:
    """Ingest every new file under the landing zone (validate, store, quarantine, alert)."""
    from pipeline.ingest.run import ingest as run_ingest
    from pipeline.ingest.summary import print_summary

    summary = run_ingest(paths, load_study(paths.study), progress=sys.stderr.isatty())
    print_summary(summary)


@main.command()
@common
@as_of_option
@unverified_option
def derive(paths: Paths, as_of: datetime | None, accept_unverified: bool) -> None:
    """Rebuild the derived tables (SAP) from the event log.

    With --as-of the tables in trial.duckdb show the study as it was then, until the next derive.
    """
    from pipeline.derive.api import derive as run_derive

    require_verified(paths, "derive", accept_unverified)
    result = run_derive(paths, load_study(paths.study), as_of=as_of)
    click.echo(result.describe())


@main.command()
@common
@as_of_option
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the reports.")
@click.option("--mail", is_flag=True,
              help="Then mail them with a summary to TRIALPIPE_REPORT_EMAIL_TO (once per ISO week).")
@unverified_option
def report(paths: Paths, as_of: datetime | None, out: Path | None, mail: bool, accept_unverified: bool) -> None:
    """Write the outcome report and the data-quality report."""
    from pipeline.report.api import write_reports

    require_verified(paths, "report", accept_unverified)
    study = load_study(paths.study)
    written = write_reports(paths, study, out=out, as_of=as_of)
    for path in written:
        click.echo(str(path))
    if mail:
        from pipeline.notify import NotificationError
        from pipeline.notify.reports import mail_reports

        try:
            click.echo(mail_reports(paths, study, written, as_of=as_of).describe())
        except NotificationError as exc:
            raise RunFailed(str(exc)) from exc


def _run_all(paths: Paths, accept_unverified: bool = False) -> None:
    from pipeline.derive.api import derive as run_derive
    from pipeline.ingest.run import ingest as run_ingest
    from pipeline.ingest.summary import print_summary
    from pipeline.report.api import write_reports

    study = load_study(paths.study)
    print_summary(run_ingest(paths, study, progress=sys.stderr.isatty()))
    require_verified(paths, "run", accept_unverified)
    click.echo(run_derive(paths, study).describe())
    for path in write_reports(paths, study):
        click.echo(str(path))


@main.command()
@common
@unverified_option
def run(paths: Paths, accept_unverified: bool) -> None:
    """Ingest, derive and report, in that order (derive and report only on a log that verifies)."""
    _run_all(paths, accept_unverified)


@main.command()
@common
@click.option("--seed", default=2007, show_default=True, help="Random seed of the simulated study.")
@click.option("--patients", default=120, show_default=True, help="Number of simulated patients.")
@click.option("--faults/--no-faults", default=True, show_default=True,
              help="Include the faulty deliveries of DTS §5.")
def demo(paths: Paths, seed: int, patients: int, faults: bool) -> None:
    """Simulate a multi-site study into a fresh landing zone, then run."""
    from pipeline.simulate import SimulationOptions, simulate_study

    if paths.landing.exists() and any(paths.landing.iterdir()):
        raise RunFailed(f"{paths.landing} is not empty; demo needs a fresh landing zone (use --landing)")
    if paths.warehouse.exists() and any(paths.warehouse.iterdir()):
        raise RunFailed(f"{paths.warehouse} is not empty; demo needs a fresh warehouse (use --warehouse)")
    if paths.study.exists():  # a real study's configuration must never be replaced by the simulated one
        raise RunFailed(f"{paths.study} exists; demo writes its own study configuration (use --study)")
    simulate_study(paths.landing, paths.study,
                   SimulationOptions(seed=seed, n_patients=patients, faults=faults))
    click.echo(f"simulated {patients} patients into {paths.landing} (study {paths.study})")
    _run_all(paths)
    from pipeline.derive.api import export as run_export

    for fmt in ("xpt", "dataset-json"):  # the ADaM datasets, as statisticians load them
        for path in run_export(paths, load_study(paths.study), fmt=fmt, out=paths.warehouse / "export" / "adam"):
            click.echo(str(path))


@main.command()
@common
def notify(paths: Paths) -> None:
    """Mail every red-flag alert not yet notified, in one message (TRIALPIPE_ALERT_EMAIL_TO, TRIALPIPE_SMTP_HOST).

    Then each site contact (contact_email in study.toml) whose query list gained new queries.
    """
    from pipeline.notify import NotificationError, notify_red_flags, notify_sites

    study = load_study(paths.study)
    errors = []  # the sites get their mail even when the red flags could not be mailed; red flags first
    try:
        click.echo(notify_red_flags(paths, study).describe())
    except NotificationError as exc:
        errors.append(str(exc))
    try:
        sites = notify_sites(paths, study)
        if sites.mailed or sites.resent:
            click.echo(sites.describe())
    except NotificationError as exc:
        errors.append(str(exc))
    if errors:
        raise RunFailed("; ".join(errors))


@main.command()
@common
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--site", required=True, help="The site the file is delivered for.")
def validate(paths: Paths, file: Path, site: str) -> None:
    """Check one site file without storing anything; print its query list."""
    from pipeline.ingest.run import validate_file

    click.echo(validate_file(paths, load_study(paths.study), file, site))


@main.command()
@common
@as_of_option
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "xpt", "dataset-json"]), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@unverified_option
def export(paths: Paths, as_of: datetime | None, fmt: str, out: Path, accept_unverified: bool) -> None:
    """Write every derived table, then events, quarantine and alerts, as <table>.csv or <table>.parquet.

    xpt (SAS transport v5) and dataset-json (CDISC Dataset-JSON v1.1) write the ADaM datasets
    ADSL, ADEFF and ADTTE and adam_metadata.csv instead.
    """
    from pipeline.derive.api import export as run_export

    require_verified(paths, "export", accept_unverified)
    for path in run_export(paths, load_study(paths.study), fmt=fmt, out=out, as_of=as_of):
        click.echo(str(path))


@main.command()
@common
@click.argument("name")
@click.option("--verify", is_flag=True, help="Prove that nothing under the lock changed.")
@unverified_option
def lock(paths: Paths, name: str, verify: bool, accept_unverified: bool) -> None:
    """Data lock: freeze the event log and derived tables under NAME with a SHA-256 manifest."""
    from pipeline.derive.lock import create_lock, verify_lock

    if verify:
        problems = verify_lock(paths, load_study(paths.study), name)
        if problems:  # the problems are the report (stdout); stderr gets the one-line reason
            for p in problems:
                click.echo(p)
            if len(problems) == 1:
                raise RunFailed(f"lock {name!r} does not verify: {problems[0]}")
            raise RunFailed(f"lock {name!r} does not verify ({len(problems)} problems, listed on stdout)")
        click.echo(f"lock {name!r} verified")
    else:
        require_verified(paths, "lock", accept_unverified)
        click.echo(str(create_lock(paths, load_study(paths.study), name)))


@main.command("verify")
@common
@click.option("--adopt", is_flag=True,
              help="Chain a warehouse written before the audit chain existed (once, explicitly).")
def verify_log(paths: Paths, adopt: bool) -> None:
    """Re-hash the whole warehouse log against its hash chain; one line per problem."""
    from pipeline.store.audit import adopt as adopt_log
    from pipeline.store.audit import verify

    if not paths.warehouse.is_dir():
        raise RunFailed(f"warehouse {paths.warehouse} is not a folder (give --warehouse)")
    if adopt:
        click.echo(f"adopted the pre-chain log: chain head {adopt_log(paths).describe()}")
    result = verify(paths)
    for problem in result.problems:  # the problems are the report (stdout); stderr gets the one-line reason
        click.echo(problem)
    if not result.ok:
        if len(result.problems) == 1:
            raise RunFailed(f"the log does not verify: {result.problems[0]}")
        raise RunFailed(f"the log does not verify ({len(result.problems)} problems, listed on stdout)")
    click.echo(result.describe())


if __name__ == "__main__":
    main()
