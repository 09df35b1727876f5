"""`hil farm status|quarantine|readmit` and `hil nightly`."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hil.errors import HilError, InfrastructureError
from hil.lab.labgrid import is_url
from hil.provisioning import TEST_PIN
from hil.terminal import printable

app = typer.Typer(no_args_is_help=True, add_completion=False, help="The lab's stations: leases and quarantine.")
console = Console()

LabOpt = Annotated[Optional[str], typer.Option("--lab", help="lab file (default: lab_config.yaml of the repo)")]


def _lab(lab: str | None, labgrid: bool = False):
    """The lab file ``--lab`` names; with ``labgrid``, a ``labgrid://`` URL too (`lab_from_option`)."""
    from hil.lab.config import lab_from_option, load_lab

    try:
        return lab_from_option(lab) if labgrid else load_lab(lab)
    except HilError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None


@app.command()
def status(lab: LabOpt = None) -> None:
    """Every station: profile, who leases it, quarantine reason."""
    from hil.lab.lease import FileLeases
    from hil.lab.quarantine import Quarantine

    cfg = _lab(lab)
    leases, quarantine = FileLeases(cfg.state_dir), Quarantine(cfg.state_dir)
    held = quarantine.entries()
    table = Table(title=f"lab {cfg.name} ({cfg.source})")
    for col in ("station", "profile", "kind", "leased by", "state"):
        table.add_column(col)
    for name, st in cfg.stations.items():
        holder = leases.holder(name)
        state = f"quarantined: {held[name].reason}" if name in held else "ok"
        kind = f"emulated (seed {st.emulated.seed})" if st.emulated else (st.debug or "")
        table.add_row(name, st.profile, kind, str(holder) if holder else "-", state)
    Console().print(table)


@app.command()
def health(stations: Annotated[Optional[list[str]], typer.Argument(help="stations (default: all)")] = None,
           lab: LabOpt = None,
           quarantine_failed: Annotated[bool, typer.Option("--quarantine", help="quarantine stations that fail")] = False,
           calibrate: Annotated[bool, typer.Option(help="print each camera's measured `camera_calibration`")] = False,
           ) -> None:
    """Run the health check (link, version, camera sees the panel, NFC) on stations that are not leased."""
    from hil.lab import health as checks
    from hil.lab.lease import FileLeases, Holder
    from hil.lab.quarantine import Quarantine
    from hil.lab.station import bring_up

    cfg = _lab(lab)
    names = stations or list(cfg.stations)
    for name in names:
        _known(cfg, name)
    leases, failed = FileLeases(cfg.state_dir), 0
    for name in names:
        try:
            lease = leases.acquire(name, Holder.me("hil farm health", "health"))
        except HilError as e:
            typer.echo(f"{name}: skipped ({e})")
            continue
        try:
            with bring_up(cfg, name) as station:
                report = checks.check(station)
                if calibrate and station.camera:
                    typer.echo(f"{name}: camera_calibration: {_measure(station)}")
        except HilError as e:
            report = None
            typer.echo(printable(f"{name}: FAIL bring-up: {e}"))
        finally:
            lease.release()
        if report is not None:
            for c in report.checks:
                typer.echo(printable(f"{name}: {'ok  ' if c.ok else 'skip' if c.ok is None else 'FAIL'} {c.name}: {c.detail}"))
        if report is None or not report.ok:
            failed += 1
            if quarantine_failed:
                Quarantine(cfg.state_dir).add(name, f"hil farm health: {report.reason if report else 'bring-up failed'}")
    raise typer.Exit(1 if failed else 0)


def _measure(station) -> str:
    import json as _json

    from hil.vision.locate import Calibration

    try:
        with station.open_camera() as cam:
            return _json.dumps(Calibration.measure(cam.grab(10.0)).to_config())
    except HilError as e:
        return f"not measured ({e})"


@app.command("quarantine")
def quarantine_cmd(station: str, reason: Annotated[str, typer.Option("--reason", help="why (shown by status)")],
                   lab: LabOpt = None) -> None:
    """Take a station out of service; runs skip it until it is readmitted."""
    from hil.lab.quarantine import OPERATOR, Quarantine

    if is_url(lab):  # issue 8: the place's health tag and comment
        from hil.lab import lab_cli

        return lab_cli.quarantine_cmd(station, reason, coordinator=lab)
    cfg = _lab(lab)
    _known(cfg, station)
    Quarantine(cfg.state_dir).add(station, reason, by=OPERATOR)
    typer.echo(f"{station}: quarantined ({reason})")


@app.command()
def readmit(station: str, lab: LabOpt = None) -> None:
    """Put a quarantined station back into service."""
    from hil.lab.pin_guard import PinGuard
    from hil.lab.quarantine import Quarantine

    if is_url(lab):  # issue 8
        from hil.lab import lab_cli

        return lab_cli.readmit(station, coordinator=lab)
    cfg = _lab(lab)
    _known(cfg, station)
    gone = Quarantine(cfg.state_dir).remove(station)
    PinGuard(station, cfg.state_dir).clear()  # the operator checked the unit's PIN
    typer.echo(f"{station}: readmitted" + (f" (was: {gone.reason})" if gone else " (was not quarantined)"))


def _known(cfg, station: str) -> None:
    if station not in cfg.stations:
        typer.echo(f"no station {station!r} in {cfg.source}; stations: {', '.join(cfg.stations)}", err=True)
        raise typer.Exit(2)


# ------------------------------------------------------------------------------------ nightly


def nightly(
    firmware: Annotated[Optional[str], typer.Option("--firmware", help="build to flash (default: the emulator's default build)")] = None,
    flavour: Annotated[str, typer.Option(help="the build's flavour, which the suites then hold the units to: "
                                              "production (a release) or development")] = "production",
    lab: LabOpt = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="start a new run instead of resuming an unfinished one")] = False,
    timeout: Annotated[float, typer.Option(help="seconds the suites may take")] = 3600.0,
) -> None:
    """Flash every station, run the suites across the farm, then history, diff, summary and sign-off."""
    from hil.lab import nightly as job

    if flavour not in ("production", "development"):
        raise typer.BadParameter(f"{flavour!r}: the flavour is production or development", param_hint="--flavour")
    cfg = _lab(lab, labgrid=True)  # issue 8: a labgrid:// URL is the repo's lab file, its stations leased there
    previous = signal.signal(signal.SIGTERM, _interrupt)  # so `finally` stops pytest and the emulators
    try:
        code = _nightly(job, cfg, firmware, flavour, fresh, timeout)
    except HilError as e:
        typer.echo(printable(f"nightly: {e}"), err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo(f"nightly: interrupted; finished results are kept under {cfg.reports_dir / 'nightly'}, "
                   "and `hil nightly` on the same build resumes the run", err=True)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    raise typer.Exit(code)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def _nightly(job, cfg, firmware: str | None, flavour: str, fresh: bool, timeout: float) -> int:
    from hil.lab.lease import FileLeases
    from hil.lab.quarantine import Quarantine
    from hil.report import signoff
    from hil.report.allure import finished_tests

    build = Path(firmware) if firmware else job.default_build()
    if not build.is_file():
        raise HilError(f"firmware {build}: no such file")
    flasher = job.samba_flasher(cfg, build, flavour)
    identity = signoff.firmware_identity(build)
    fw_hash = identity.get("reproducible_hash") or identity["sha256"]
    run = job.open_run(cfg, {"file": str(build), "sha256": identity["sha256"], "hash": fw_hash,
                             "version": identity.get("version", "?")}, resume=not fresh)
    console.print(f"nightly {run.run_id}{' (resumed)' if run.resumed else ''}: {build.name} "
                  f"{identity.get('version', '')} {fw_hash[:16]} on {cfg.name} -> {run.dir}")
    quarantine, leases = Quarantine(cfg.state_dir), FileLeases(cfg.state_dir)
    with contextlib.ExitStack() as stack:
        with _progress() as bar:
            if cfg.coordinator:  # issue 8: the stations are labgrid places on bench hosts, leased there
                from hil.lab.place_flash import build_tag, flash_places, run_url

                tasks: dict = {}  # one bar per place, made on its first update (only its own thread updates it)
                stations = flash_places(cfg, flasher, run, lambda n, frac: bar.update(
                    tasks[n] if n in tasks else tasks.setdefault(n, bar.add_task(f"flash {n}", total=100)),
                    completed=int(frac * 100)), flavour, build_tag(fw_hash))
                run_lab = run_url(cfg.coordinator, flavour, build_tag(fw_hash))  # the workers lease those places
            else:
                up = bar.add_task("bring-up", total=len(cfg.stations))
                stations = job.bring_up_all(cfg, stack, run, quarantine, lambda _n: bar.advance(up))
                for name, line in run.meta["readmitted"].items():
                    console.print(f"{name}: {line}", markup=False, soft_wrap=True)
                tasks = {n: bar.add_task(f"flash {n}", total=100) for n in stations}
                stations = job.flash_all(stations, flasher, leases, run, quarantine,
                                         lambda n, frac: bar.update(tasks[n], completed=int(frac * 100)), flavour)
                run_lab = job.write_run_lab(cfg, stations, run.dir / "lab.yaml")
        # the profiles the sign-off wants evidence for: the lab's stations (on labgrid, those on its benches)
        # and every station flashed
        run.meta["profiles"] = sorted({st.profile for st in cfg.stations.values() if st.bench or not cfg.coordinator}
                                      | {st.profile.name for st in stations.values()})
        run.save()
        if not stations:
            why = "; ".join(f"{n}: {w}" for n, w in run.meta["broken_stations"].items())
            raise HilError(f"no station is usable ({why or 'none in the lab'}); see `hil farm status`")
        done = finished_tests(run.results) if run.resumed else set()
        if done:
            console.print(f"resuming: {len(done)} test(s) already have a result")
        cmd = job.pytest_command(run, run_lab, len(stations), fw_hash, [str(p) for p in cfg.suites], done, flavour)
        finished: set[str] = set()
        with _progress() as bar:
            task = bar.add_task(f"suites on {len(stations)} station(s)", total=None)

            def on_event(ev: dict) -> None:
                if ev.get("event") == "collected":
                    bar.update(task, total=max(ev["total"], bar.tasks[task].total or 0))
                elif ev.get("event") == "finished" and not ev.get("retried"):
                    finished.add(ev["nodeid"])
                    bar.update(task, completed=len(finished))

            rc = job.run_suites(cmd, run, on_event, timeout, env=job.suite_env(cfg.state_dir))
    if rc not in (0, 1, 5):  # 5: nothing collected, which the sign-off reports as missing evidence
        raise HilError(f"pytest exited {rc}, see {run.dir / 'pytest.log'}; the run stays open and the next "
                       "`hil nightly` on this build resumes it")
    return _report(job, cfg, run, build, quarantine)


def _report(job, cfg, run, build: Path, quarantine) -> int:
    from hil.report import allure_report, signoff
    from hil.report.allure import read_results
    from hil.report.history import History, Night, diff
    from hil.report.summary import render

    for name, entry in quarantine.entries().items():
        if entry.since >= run.meta["started"] and name not in run.meta.get("unavailable", {}):
            run.meta["broken_stations"].setdefault(name, entry.reason)
    if cfg.coordinator:  # issue 8: places the workers quarantined during the suites (labgrid keeps the reason)
        from hil.lab.place_flash import quarantined_places

        try:
            for name, why in quarantined_places(cfg).items():
                run.meta["broken_stations"].setdefault(name, why)
        except InfrastructureError as e:  # the report still gets written, saying what it could not tell
            run.meta["broken_stations"].setdefault(cfg.coordinator, f"cannot list places quarantined in the run: {e}")
    results = read_results(run.results)
    run.save()  # stations broken in the run are on disk before the sign-off reads them: `hil signoff` agrees
    finished = time.time()
    night = Night.from_results(results, run_id=run.run_id, started=run.meta["started"], finished=finished,
                               lab=cfg.name, firmware=run.meta["firmware"],
                               broken_stations={**run.meta.get("unavailable", {}), **run.meta["broken_stations"]})
    history = History(cfg.reports_dir / "history.jsonl")
    d = diff(history.last(before=run.run_id), night)
    (run.dir / "diff.json").write_text(json.dumps(d.__dict__, indent=2))
    (run.dir / "diff.txt").write_text(d.text() + "\n")
    console.print(printable(d.text()), markup=False)
    bundle = run.dir / "signoff"
    if bundle.exists():  # a resumed run that was killed after signing: the bundle is re-made from all results
        shutil.rmtree(bundle)
    stations = {**{n: f"{how} (ran the suites)" for n, how in run.meta.get("flashed", {}).items()},
                **{n: f"broken: {why}" for n, why in run.meta["broken_stations"].items()}}
    allure_report.write_metadata(run.results, run_id=run.run_id, lab=cfg.name, firmware=run.meta["firmware"],
                                 harness=signoff.harness_version()["git"], stations=stations)
    key = signoff.lab_key(cfg.signing_key)
    profiles = set(run.meta["profiles"])
    decision = signoff.create(build, run.results, bundle, criteria_path=cfg.signoff_criteria, key=key,
                              lab=cfg.name, profiles=profiles, signer=cfg.signing_key)
    signoff.verify(bundle, key.public_key())
    verdict = "GO" if decision.go else "NO-GO"
    (run.dir / "summary.html").write_text(render(night, d, results, verdict))
    try:
        console.print(printable(f"Allure report: {allure_report.generate(run.dir, cfg.reports_dir / allure_report.HISTORY)}"),
                      markup=False)
    except HilError as e:  # the sign-off stands without it; say how to get it
        console.print(printable(f"Allure report not generated: {e}"), markup=False)
    history.append(night)
    run.meta["finished"] = finished
    run.save()
    console.print(printable(f"sign-off: {verdict}" + ("" if decision.go else
                                                      f" (failing suites: {', '.join(decision.failing_suites) or 'none'})")),
                  markup=False)
    for reason in decision.reasons:
        console.print(printable(f"  {reason}"), markup=False)
    console.print(f"reports: {run.dir} (summary.html, diff.txt, {job.RESULTS}/, signoff/)", markup=False)
    return 0 if decision.go else 1


station_app = typer.Typer(no_args_is_help=True, add_completion=False, help="One bench: commissioning.")


@station_app.command("commission")
def commission_cmd(station: str, lab: LabOpt = None,
                   pin: Annotated[str, typer.Option("--pin", help="the PIN the unit is provisioned with")] = TEST_PIN) -> None:
    """Walk a new bench through its assumptions, each checked on the unit: prints each finding, stores
    what was measured in the lab state, and exits 1 if anything is wrong."""
    from hil.lab.commission import commission
    from hil.lab.station import bring_up

    cfg = _lab(lab)
    _known(cfg, station)
    try:
        with bring_up(cfg, station) as st:
            findings = commission(st, cfg.state_dir, pin)
    except HilError as e:
        typer.echo(f"{station}: {e}", err=True)
        raise typer.Exit(1) from None
    for f in findings:
        typer.echo(f.line())
    unverified = [f.what for f in findings if f.verified is None]
    if unverified:
        typer.echo(f"could not verify: {', '.join(unverified)}")
    raise typer.Exit(1 if any(f.verified is False for f in findings) else 0)
