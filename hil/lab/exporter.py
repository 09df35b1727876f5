"""What a bench publishes through its labgrid exporter, both ways: the exporter YAML of a bench's stations
(`hil lab exporter-config`, what `hil bridge` serves), and a leased place's resources back as a `Station`.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from hil.errors import ConfigError
from hil.lab.config import LabConfig, RobotCalibration
from hil.lab.labgrid import Coordinator, PlaceLost
from hil.lab.station import Station
from hil.profile import PROFILES_DIR, Profile, load_profile

INSTRUMENTS = {"nfc": "PrimeNfc", "robot": "PrimeRobot", "relay": "PrimeRelay"}  # station key: resource class
# where each endpoint of a station listens on its bench, from its `bridge_port` (`hil bridge` serves them there)
PORT_OFFSETS = {"debug": 0, "camera": 1, "nfc": 2, "robot": 3, "relay": 4}


def exporter_config(lab: LabConfig, bench: str, live: dict[str, dict] | None = None) -> str:
    """The labgrid exporter YAML of one bench: one resource group per station. A running bridge passes,
    per station, what it serves (`hil.lab.bridge.serve_station`) over the lab file's values; without it the
    endpoints are at `bridge_port` plus `PORT_OFFSETS`."""
    if bench not in lab.benches:
        raise ConfigError(f"{lab.source}: no bench {bench!r} (known: {', '.join(lab.benches) or 'none'})")
    host = lab.benches[bench].host
    groups = {}
    for name, st in lab.stations.items():
        if st.bench != bench:
            continue
        now = (live or {}).get(name, {})
        port = now.get("port", st.bridge_port)
        if port is None:
            raise ConfigError(f"{lab.source}: station {name} on bench {bench} has no `bridge_port`")
        group: dict = {
            "location": bench,
            "debug": {"cls": "PrimeDebugLink", "host": host, "port": port},
            "station": {"cls": "PrimeStation", "profile": st.profile, "usb_port": st.usb_port or "",
                        "serial": now.get("serial") or st.serial or ""},
        }
        if now.get("samba"):  # an emulated unit's SAM-BA pty; ser2net serves it on acquire, as a CDC port
            group["samba"] = {"cls": "RawSerialPort", "port": now["samba"], "speed": 115200}
        elif st.samba and st.usb_port:  # SAM-BA's CDC port, by USB port path; ser2net serves it on acquire
            vid, pid = lab.profile(st.profile).usb.samba.split(":")
            group["samba"] = {"cls": "USBSerialPort", "speed": 115200,
                              "match": {"@sys_name": st.usb_port, "ID_VENDOR_ID": vid, "ID_MODEL_ID": pid}}
        camera = now.get("camera")  # the bridge's camera relay, gated like the debug link
        if camera is None and st.camera and st.camera.startswith("http"):
            camera = f"http://{host}:{port + PORT_OFFSETS['camera']}{urlsplit(st.camera).path}"
        if camera is not None:
            group["camera"] = {"cls": "HTTPVideoStream", "url": camera}
        for kind, cls in INSTRUMENTS.items():  # the bridge's NFC service, robot and relay
            at = now.get(kind) or (port + PORT_OFFSETS[kind] if getattr(st, kind) and not live else None)
            if at:
                group[kind] = {"cls": cls, "host": host, "port": at}
        points = now.get("robot_calibration") or (st.robot_calibration.points if st.robot_calibration else None)
        if points:  # labgrid passes resource parameters as scalars: the points go as JSON
            group["station"]["robot_calibration"] = json.dumps(points)
        cd_relay = now.get("cd_relay") or st.cd_relay  # the relay board's channel across the CD pads
        if cd_relay:
            group["station"]["cd_relay"] = cd_relay
        groups[name] = group
    if not groups:
        raise ConfigError(f"{lab.source}: bench {bench} has no stations")
    return yaml.safe_dump(groups, sort_keys=False)  # no comment line: the exporter reads it as a Jinja2 template


def station_from_place(coord: Coordinator, name: str, token: str, profiles_dir: Path | None = None) -> Station:
    """The place's acquired resources as a `Station` (looked up once; the caller keeps it); `token` is the
    lease token the bench's camera relay asks for. Profiles come from the repository's `device_profiles/`
    unless `profiles_dir` says otherwise."""
    place = coord.places[name]
    found: dict = {}
    bench = place.tags.get("bench", "?")
    for exporter, group, cls, res_name in place.acquired_resources:
        entry = coord.resources.get(exporter, {}).get(group, {}).get(res_name)
        if entry is None or not entry.data:  # an exporter that left deletes its resources to empty entries
            raise PlaceLost(f"bench {exporter}, place {name}: resource {group}/{res_name} is orphaned "
                            f"(exporter {exporter} gone)")
        found[cls] = entry.params
    if "PrimeDebugLink" not in found or "PrimeStation" not in found:
        raise PlaceLost(f"bench {bench}, place {name}: no PrimeDebugLink/PrimeStation resource; is the exporter "
                        f"of bench {bench} running with `hil lab exporter-config {bench}`?")
    link, info = found["PrimeDebugLink"], found["PrimeStation"]
    profile: Profile = load_profile(info["profile"], profiles_dir or PROFILES_DIR)
    samba = found.get("NetworkSerialPort")
    instruments = {kind: f"bridge:{found[cls]['host']}:{found[cls]['port']}"
                   for kind, cls in INSTRUMENTS.items() if cls in found}
    try:
        points = json.loads(info["robot_calibration"]) if info.get("robot_calibration") else None
        calibration = RobotCalibration(points=points) if points else None
    except (ValueError, ValidationError) as e:
        why = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
        raise PlaceLost(f"bench {bench}, place {name}: the exporter's robot_calibration is not valid ({why}); "
                        f"regenerate it with `hil lab exporter-config {bench}`") from None
    return Station(name=name, profile=profile, debug=f"bridge:{link['host']}:{link['port']}",
                   usb_port=info.get("usb_port") or None, serial=info.get("serial") or None,
                   samba=f"rfc2217://{samba['host']}:{samba['port']}?ign_set_control" if samba else None,
                   camera=f"{found['HTTPVideoStream']['url']}?lease={token}" if "HTTPVideoStream" in found else None,
                   robot_calibration=calibration, cd_relay=int(info["cd_relay"]) if info.get("cd_relay") else None,
                   **instruments,
                   tags=tuple(f"{k}={v}" for k, v in sorted(place.tags.items())),
                   flavour=place.tags.get("flavour"))
