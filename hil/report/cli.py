"""`hil signoff --build BUILD --results DIR -o BUNDLE` and `hil signoff verify BUNDLE`.

Typer needs `hil signoff` both as a command and as a group: the group's callback is the create form
and runs only when no sub-command is given."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated, Optional

import typer

from hil.errors import HilError
from hil.terminal import printable

signoff_app = typer.Typer(add_completion=False, invoke_without_command=True,
                          help="Release sign-off: go/no-go, signed; `verify` checks a bundle offline.")

LabOpt = Annotated[Optional[str], typer.Option("--lab", help="lab file with the signing key (default: lab_config.yaml)")]


@signoff_app.callback()
def create(
    ctx: typer.Context,
    build: Annotated[Optional[Path], typer.Option("--build", help="the firmware build (cosign2 image)")] = None,
    results: Annotated[Optional[Path], typer.Option("--results", help="Allure results folder, or a folder of runs")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="bundle folder to create")] = None,
    lab: LabOpt = None,
) -> None:
    """Decide go/no-go for BUILD from the results, and write a signed bundle (JSON, HTML, PDF, evidence)."""
    if ctx.invoked_subcommand is not None:
        return
    if build is None or results is None or output is None:
        typer.echo("usage: hil signoff --build BUILD --results DIR -o BUNDLE  |  hil signoff verify BUNDLE", err=True)
        raise typer.Exit(2)
    from hil.lab.config import load_lab
    from hil.report import signoff

    try:
        cfg = load_lab(lab)
        if not build.is_file():
            raise HilError(f"build {build}: no such file")
        decision = signoff.create(build, results, output, criteria_path=cfg.signoff_criteria,
                                  key=signoff.lab_key(cfg.signing_key), lab=cfg.name,
                                  profiles={s.profile for s in cfg.stations.values()}, signer=cfg.signing_key)
    except HilError as e:
        typer.echo(printable(f"signoff: {e}"), err=True)
        raise typer.Exit(2) from None
    typer.echo(printable(f"{'GO' if decision.go else 'NO-GO'}: {output}"))
    for reason in decision.reasons:
        typer.echo(printable(f"  {reason}"))
    raise typer.Exit(0 if decision.go else 1)


@signoff_app.command()
def verify(
    bundle: Path,
    trusted_signers: Annotated[Optional[Path], typer.Option(
        "--trusted", help="trusted-signers file: the signers' PEM public keys (default: the lab's, beside its key)")] = None,
    lab: LabOpt = None,
) -> None:
    """Check the bundle's signature and every file's SHA-256, offline, with public keys only; exit 1 on any change."""
    from hil.lab.config import load_lab
    from hil.report import signoff

    try:
        trusted = signoff.load_trusted(trusted_signers or load_lab(lab).signing_key.trusted_signers)
        payload = signoff.verify(bundle, trusted)
    except signoff.VerifyError as e:
        typer.echo(printable(f"NOT VERIFIED: {e}"), err=True)
        raise typer.Exit(1) from None
    except (HilError, OSError) as e:
        typer.echo(printable(f"signoff verify: {e}"), err=True)
        raise typer.Exit(2) from None
    signer = payload["signer"]
    typer.echo(printable(f"verified: {payload['decision'].upper()} for {payload['firmware']['file']} "
                         f"({len(payload['evidence'])} evidence files, signed by {signer.get('name', '?')}, "
                         f"{signer.get('role', '?')}, key {signer['public_key'][:16]}…)"))
    for why in payload.get("not_a_release", []):
        typer.echo(printable(f"NOT A RELEASE: {why}"))


report_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reports of a run (Allure 3).")


@report_app.command("allure")
def allure_report(
    run: Annotated[Path, typer.Argument(help="a nightly run folder (reports/nightly/<run>)")],
    lab: LabOpt = None,
) -> None:
    """Generate the run's Allure report with Allure 3, with the history of the lab's earlier nights."""
    from hil.lab.config import load_lab
    from hil.report import allure_report as report

    try:
        out = report.generate(run, load_lab(lab).reports_dir / report.HISTORY)
    except report.AllureMissing as e:
        typer.echo(printable(f"report allure: {e}"), err=True)
        raise typer.Exit(3) from None
    except (HilError, OSError, subprocess.SubprocessError) as e:
        typer.echo(printable(f"report allure: {e}"), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Allure report: {out / 'index.html'}")
