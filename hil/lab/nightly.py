"""The nightly job: flash every station with one build, run the suites across the farm (one pytest-xdist
worker per station), then history, diff, summary and a signed sign-off, all under
`reports/nightly/<run>/`.

Everything a finished test leaves is on disk as soon as it finishes (Allure writes per test), and
`run.json` is written first and marked finished last, so a killed nightly is resumed by the next one on
the same build: tests with a final result are deselected, the rest run into the same results folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from hil.errors import ConfigError, HilError, InfrastructureError
from hil.lab import health
from hil.lab.config import LabConfig
from hil.yamlfile import read_yaml
from hil.lab.lease import FileLeases, Holder
from hil.lab.quarantine import Quarantine
from hil.lab.station import Station, bring_up, to_config
from hil.machine import scaled

ROOT = Path(__file__).resolve().parents[2]
RESULTS = "allure-results"


@dataclass
class Run:
    dir: Path
    meta: dict
    resumed: bool = False

    @property
    def run_id(self) -> str:
        return self.meta["run_id"]

    @property
    def results(self) -> Path:
        return self.dir / RESULTS

    def save(self) -> None:
        tmp = self.dir / "run.json.tmp"
        tmp.write_text(json.dumps(self.meta, indent=2))
        tmp.replace(self.dir / "run.json")


def open_run(lab: LabConfig, firmware: dict, *, resume: bool = True) -> Run:
    """A new run folder, or the latest unfinished run of the same build on the same lab."""
    base = lab.reports_dir / "nightly"
    base.mkdir(parents=True, exist_ok=True)
    if resume:
        for meta_path in sorted(base.glob("*/run.json"), reverse=True):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if meta.get("finished") is None and meta.get("lab") == lab.name and \
                    meta.get("firmware", {}).get("sha256") == firmware.get("sha256"):
                return Run(meta_path.parent, meta, resumed=True)
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = base / run_id
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = base / f"{run_id}-{n}"
    run_dir.mkdir()
    run = Run(run_dir, {"run_id": run_dir.name, "lab": lab.name, "firmware": firmware, "started": time.time(),
                        "finished": None, "broken_stations": {}})
    run.save()
    return run


def bring_up_all(lab: LabConfig, stack: contextlib.ExitStack, run: Run, quarantine: Quarantine,
                 on_station: Callable[[str], None]) -> dict[str, Station]:
    """Every station not in quarantine, live; one that does not come up is quarantined with the reason.
    A station a fault quarantined before the run is brought up and health-checked: it is readmitted
    (``run.meta["readmitted"]`` says so) when it passes, else it stays out.  Stations an operator
    quarantined, and those that stay out, are `unavailable` (they take no part), not broken in this run;
    one quarantined during an earlier part of a resumed run is broken in it."""
    held = quarantine.entries()
    run.meta["unavailable"], run.meta["readmitted"] = {}, {}
    wanted = []
    for name in lab.stations:
        if name in held and held[name].since >= run.meta["started"]:
            run.meta["broken_stations"][name] = held[name].reason
        elif name in held and held[name].by_operator:
            run.meta["unavailable"][name] = f"in quarantine since before the run: {held[name].reason}"
        else:
            wanted.append(name)
    registering = threading.Lock()

    def start(name: str) -> Station:
        cm = bring_up(lab, name)
        station = cm.__enter__()
        with registering:  # registered at once, so an interrupted nightly still stops every emulator
            stack.push(cm.__exit__)
        return station

    def heal(name: str) -> Station | None:
        """A fault's quarantine is lifted by a health check that passes now."""
        was = held[name]
        try:
            station = start(name)
        except (HilError, OSError) as e:
            run.meta["unavailable"][name] = f"in quarantine since before the run: {was.reason}; bring-up failed: {e}"
            return None
        report = health.check(station)
        if not report.ok:
            run.meta["unavailable"][name] = (f"in quarantine since before the run: {was.reason}; "
                                             f"health check failed again: {report.reason}")
            return None
        quarantine.remove(name)
        run.meta["readmitted"][name] = f"readmitted: passed the health check ({was.by} had quarantined it: {was.reason})"
        return station

    out = {}
    with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
        futures = {name: pool.submit(heal if name in held else start, name) for name in wanted}
        for name, future in futures.items():
            try:
                station = future.result()
            except (HilError, OSError) as e:
                quarantine.add(name, f"bring-up failed: {e}")
                run.meta["broken_stations"][name] = f"bring-up failed: {e}"
            else:
                if station is not None:
                    out[name] = station
            on_station(name)
    for name in lab.stations:
        if name not in wanted:
            on_station(name)
    return out


Flasher = Callable[[Station, Callable[[float], None]], bool]


def default_build() -> Path:
    """The emulator's default signed build (what `hil firmware build-emulated` makes), built on first use."""
    from hil.flash import emulated

    return emulated.default_build()


def samba_flasher(lab: LabConfig, build: Path, flavour: str = "production") -> Flasher:
    """Full reflash of `build` through each station's SAM-BA port with hil.flash.flasher. The image is
    checked against the lab's trusted key set here, before any station is touched: a bad build is the
    build's fault, not the stations'. Its trust must be one every station's bootloader boots for
    ``flavour`` (profiles' ``boots``: a development build is developer-signed, ThirdParty)."""
    from hil.flash import emulated, flasher
    from hil.lab.first_contact import keyos_booted
    from hil.stimuli.boot_menu import flasher_route

    if lab.samba_applet is None:
        raise ConfigError(f"{lab.source}: no `samba_applet`; the flasher needs the SD/MMC applet")
    try:
        applet = lab.samba_applet.read_bytes()
    except OSError as e:
        raise ConfigError(f"{lab.source}: samba_applet {lab.samba_applet}: {e.strerror}") from None
    keys = emulated.keyset(lab.firmware_keys)
    boots = frozenset.intersection(*(flasher.boot_policy(lab.profile(st.profile).boots(flavour))
                                     for st in lab.stations.values())) if lab.stations else flasher.PRODUCTION_POLICY
    firmware = flasher.load_firmware(build, keys, boots)

    def flash(station: Station, progress: Callable[[float], None]) -> bool:
        if station.samba is None:
            raise flasher.FlashFailed(f"station {station.name} has no SAM-BA port (`samba`) to flash through")
        # the build flashed may have no debug link (a production build without usb-debug): then KeyOS is
        # awaited on the unit's USB port path before the monitor's port is let go
        no_link = station.profile.link_missing(flavour)
        link = (lambda: station.client()) if station.debug and not no_link else None
        # production builds, and a unit left on the bootloader's error page, answer no REBOOT_SAMBA: the
        # station's jig takes the unit there by its route (CD pads on production, Boot Menu on development)
        with flasher_route(station) as enter_samba:
            unit = flasher.Flasher(station.samba, applet, keys, link=link, enter_samba=enter_samba,
                                   progress=lambda _phase, done, total: progress(done / total if total else 0.0))
            result = unit.flash(firmware, booted=keyos_booted(station, unit.timeout) if link is None else None)
        return result.action != "skipped"

    return flash


def flash_all(stations: dict[str, Station], flasher: Flasher, leases: FileLeases, run: Run,
              quarantine: Quarantine, progress: Callable[[str, float], None], flavour: str) -> dict[str, Station]:
    """Flash every station at once, each under its lease; `flasher` returns False when the station already
    runs the build. A station that fails is quarantined with the reason and left out of the run. The
    others now run the build, so they are declared its ``flavour`` (the suites hold them to it)."""
    holder = Holder.me("nightly", run.run_id)

    def one(name: str, station: Station) -> bool:
        try:
            lease = leases.acquire(name, holder, timeout=60)
            try:
                flashed = flasher(station, lambda frac: progress(name, frac))
            finally:
                lease.release()
        except (HilError, OSError) as e:
            quarantine.add(name, f"flashing failed: {e}")
            run.meta["broken_stations"][name] = f"flashing failed: {e}"
            return False
        run.meta.setdefault("flashed", {})[name] = "flashed" if flashed else "already on the build"
        why = measure(station, run.meta["firmware"].get("version"))
        if why:
            quarantine.add(name, why)
            run.meta["broken_stations"][name] = why
            return False
        progress(name, 1.0)
        return True

    with ThreadPoolExecutor(max_workers=max(1, len(stations))) as pool:
        ok = dict(zip(stations, pool.map(lambda item: one(*item), stations.items())))
    return {n: s.model_copy(update={"flavour": flavour}) for n, s in stations.items() if ok[n]}


def measure(station: Station, version: str | None) -> str | None:
    """What the unit says it runs after flashing (GET_VERSION, as Settings > About shows it); why the
    station is broken when that is not the build, None when it is. The flasher's read-back checked the
    image's hash; this checks the unit booted it."""
    if station.debug is None:
        return None  # no debug link: the results' health-check version is the measure
    try:
        with station.client(timeout=scaled(10.0)) as client:  # a loaded lab host answers late, not wrongly
            reported = client.version()
    except (HilError, OSError) as e:
        return f"flashed, but its version could not be read: {e}"
    if reported != version:
        return f"flashed, but its unit reports version {reported}, not the build's {version}"
    return None


def write_run_lab(lab: LabConfig, stations: dict[str, Station], path: Path) -> Path:
    """The lab as the workers see it: only the live stations, each wired to its endpoints."""
    assert lab.source is not None
    raw, _ = read_yaml(lab.source)
    raw.update(state_dir=str(lab.state_dir), reports_dir=str(lab.reports_dir), profiles_dir=str(lab.profiles_dir),
               signoff_criteria=str(lab.signoff_criteria), suites=[str(p) for p in lab.suites],
               samba_applet=str(lab.samba_applet) if lab.samba_applet else None, firmware_keys=lab.firmware_keys,
               signing_key={**raw["signing_key"], "path": str(lab.signing_key.path)},
               stations={n: to_config(s).model_dump(exclude_none=True, exclude_defaults=True, mode="json")
                         for n, s in stations.items()})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def suites_root(suites: list[str]) -> Path:
    """Where the suites' test ids start: the repository for its own suites, else the folder that holds
    the lab's suites folder. Left to pytest, it would depend on where the repository and the reports
    happen to be (their common ancestor), and the ids and the sign-off's suite names with it."""
    paths = [Path(s).resolve() for s in suites]
    if all(p.is_relative_to(ROOT) for p in paths):
        return ROOT
    return Path(os.path.commonpath(paths)).parent


# Plugins a suite run never uses, left out of its pytest processes: @given runs without hypothesis's plugin,
# which costs each worker ~2 s at exit (benchmarks/lab50.py); labgrid's own (--lg-env) is unused, places go
# through hil.lab.labgrid, and its imports cost ~0.9 s CPU a process. pytest's unraisableexception runs five full
# garbage collections as each process ends (0.45 s of CPU in a worker, 1-2 s of the run's end at load 8, all
# workers at once); without it an exception raised in a __del__ is still printed (Python's own hook, on stderr:
# the nightly's pytest.log), only no longer turned into a pytest warning.
UNUSED_PLUGINS = ("-p", "no:hypothesispytest", "-p", "no:labgrid", "-p", "no:unraisableexception")


def suite_env(state_dir: Path) -> dict[str, str]:
    """The environment of a suite run's pytest processes. Each worker compiles the harness and the suites, and
    pytest rewrites their asserts, unless it finds them cached: ~1 s of CPU a worker, all at once at the run's
    start. Where ``PYTHONDONTWRITEBYTECODE`` keeps bytecode out of the source tree, it goes to the lab's state dir
    (``pycache/``; the next run reads it) instead of being compiled again by every process of every run."""
    env = dict(os.environ)
    if env.pop("PYTHONDONTWRITEBYTECODE", ""):
        env.setdefault("PYTHONPYCACHEPREFIX", str(Path(state_dir).resolve() / "pycache"))
    return env


def pytest_command(run: Run, run_lab: Path, workers: int, firmware_hash: str, suites: list[str],
                   deselect: set[str], flavour: str) -> list[str]:
    """The suites' pytest command; ``--flavour`` (the stations declare it too) puts the build's flavour in the plan."""
    cmd = [sys.executable, "-m", "pytest", *suites, "-n", str(workers), "--rootdir", str(suites_root(suites)),
           "--lab", str(run_lab), "--flavour", flavour, "--farm-firmware", firmware_hash, "--farm-events", str(run.dir / "events.jsonl"),
           "--alluredir", str(run.results), "-q", "-rN", "-p", "no:cacheprovider", *UNUSED_PLUGINS,
           "--continue-on-collection-errors"]  # a module that does not import is named by the plan, the rest runs
    for nodeid in sorted(deselect):
        cmd += ["--deselect", nodeid]
    return cmd


def run_suites(cmd: list[str], run: Run, on_event: Callable[[dict], None], timeout: float,
               env: dict[str, str] | None = None) -> int:
    """pytest in a subprocess (in ``env``, `suite_env`), its output in `pytest.log`; events are passed on as they
    arrive."""
    events = run.dir / "events.jsonl"
    events.touch()
    with (run.dir / "pytest.log").open("ab") as log, events.open() as ev:
        ev.seek(0, 2)  # a resumed run's earlier events are not this run's progress
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout
        try:
            while True:
                for line in _lines(ev):
                    on_event(line)
                if proc.poll() is not None:
                    for line in _lines(ev):
                        on_event(line)
                    return proc.returncode
                if time.monotonic() > deadline:
                    raise InfrastructureError(f"the suites did not finish within {timeout:.0f} s; "
                                              f"see {run.dir / 'pytest.log'}")
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _lines(f) -> Iterator[dict]:
    while True:
        pos = f.tell()
        line = f.readline()
        if not line.endswith("\n"):
            f.seek(pos)
            return
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue
