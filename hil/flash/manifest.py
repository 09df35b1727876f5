"""KeyOS app manifests in their three forms (keyos.md §1.1), as one pure codec.

* source ``manifest.toml`` (camelCase, ``[permissions] template = [...]`` expanded from a
  ``permission_templates.toml``),
* signed ``manifest.json``: a cosign2 header (2048 bytes) then the same schema as JSON; the header
  signs the JSON bytes (xtask ``builder.rs`` runs ``cosign2 sign --developer`` on it, and
  passport-drive ``load_app.rs`` ``manifest_json()`` skips the header to read it),
* the release 1.0.0 ``manifest.json`` whose permissions are message-id ranges per server.

The emulated Prime imports this module to load installed and sideloaded apps; the suites import
it to generate their checks. Bad input raises :class:`ManifestError` with one line naming the
file, the field and the fix; nothing is half-parsed. Unknown keys are ignored, as ``ManifestV0``'s plain serde derive does
(``os/app-manifest/src/schema/manifest_v0.rs``); no KeyOS source checks an ``appSignature`` key
(1.0.0 manifests carry ``"0x00"``), so none is read.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.errors import ConfigError
from hil.flash import cosign2

MESSAGE_TYPES = ("archive", "blockingArchive", "archiveEvent", "scalar", "blockingScalar", "scalarEvent",
                 "lendMut", "deferredLendMut", "move")  # MessageType, os/app-manifest/src/lib.rs
APPROVALS = ("autoAllow", "grantOnFirstUse", "notUserGrantable")
SIGNATURES = ("thirdParty", "foundation")
_APP_ID = re.compile(r"0x[0-9a-fA-F]{32}")
_RANGE = re.compile(r"(\d+)\.\.(\d+)")


class ManifestError(ConfigError):
    """A manifest (or template/matrix file) that does not follow the KeyOS schema."""


def _fail(source: str, fld: str, problem: str, fix: str) -> ManifestError:
    return ManifestError(f"{source}: {fld}: {problem}; {fix}")


@dataclass(frozen=True)
class Message:
    """One message a server exposes, with the permission policy its API manifest declares."""

    name: str
    id: int
    type: str | None = None  # None where the source does not state it (a capability-matrix row, not a manifest)
    permission_group: str | None = None  # "<group>.<subgroup>"
    required_signature: str | None = None
    approval: str = "notUserGrantable"
    cfg: str | None = None

    @property
    def signature(self) -> str:
        """The effective tier: thirdParty when grantable (has a group), else foundation."""
        if self.required_signature:
            return self.required_signature
        return "thirdParty" if self.permission_group else "foundation"

    @property
    def has_policy(self) -> bool:
        """False for internal messages that carry no permission metadata at all."""
        return bool(self.permission_group or self.required_signature or self.approval != "notUserGrantable")

    def signature_satisfied_by(self, foundation_signed: bool) -> bool:
        return self.signature == "thirdParty" or foundation_signed


@dataclass
class Manifest:
    """An app's identity and what it may send, in any of the three forms."""

    source: str
    form: str  # "toml" | "json" | "release-1.0.0"
    app_id: str  # "0x" + 32 lowercase hex
    app_name: dict[str, str]
    version: str | None = None
    publisher: str | None = None
    description: str | None = None
    min_keyos_version: str | None = None  # minKeyosVersion: SemVer (os/app-manifest/src/schema/manifest_v0.rs @4a327e5)
    servers: dict[str, dict[str, Message]] = field(default_factory=dict)  # servers it exposes
    permissions: dict[str, list[str]] = field(default_factory=dict)  # server -> message names
    permission_ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # 1.0.0: half-open
    memory: list[str] = field(default_factory=list)
    syscall: list[str] = field(default_factory=list)
    file_hashes: dict[str, str] = field(default_factory=dict)

    @property
    def app_id_bytes(self) -> bytes:
        return bytes.fromhex(self.app_id[2:])

    @property
    def name(self) -> str:
        """What KeyOS shows for the app: its English name, else "N/A" (``Manifest::app_name_en``, lib.rs)."""
        return self.app_name.get("en", "N/A")

    def declared_servers(self) -> list[str]:
        return sorted(set(self.permissions) | set(self.permission_ranges))

    def to_json_obj(self) -> dict[str, Any]:
        """The signed-``manifest.json`` object of a current-form manifest (templates expanded)."""
        if self.form == "release-1.0.0":
            obj = {"appName": self.app_name, "appDescription": {}, "appId": self.app_id,
                   "appSignature": "0x00",
                   "servers": [{"name": s, "description": {}, "messages": []} for s in self.servers],
                   "permissions": [{"server": s, "messages": f"{a}..{b}"}
                                   for s, rs in self.permission_ranges.items() for a, b in rs]}
            if self.file_hashes:  # a sideloaded bundle in this form binds its ELF the same way
                obj["fileHashes"] = self.file_hashes
            return obj
        obj: dict[str, Any] = {"manifestVersion": "0", "appId": self.app_id, "appName": self.app_name}
        for key, value in (("version", self.version), ("publisher", self.publisher),
                           ("description", self.description), ("minKeyosVersion", self.min_keyos_version)):
            if value is not None:
                obj[key] = value
        if self.servers:
            obj["servers"] = {s: {m.name: _message_obj(m) for m in msgs.values()} for s, msgs in self.servers.items()}
        obj["permissions"] = {s: list(names) for s, names in self.permissions.items()}
        for key, value in (("memory", self.memory), ("syscall", self.syscall), ("fileHashes", self.file_hashes)):
            if value:
                obj[key] = value
        return obj

    def dumps(self) -> bytes:
        return json.dumps(self.to_json_obj(), indent=2, ensure_ascii=False).encode()


def _message_obj(m: Message) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": m.id}
    for key, value in (("type", m.type), ("permissionGroup", m.permission_group), ("requiredSignature", m.required_signature),
                       ("cfg", m.cfg)):
        if value is not None:
            obj[key] = value
    if m.approval != "notUserGrantable":
        obj["approval"] = m.approval
    return obj


# ------------------------------------------------------------------------------------- parsing


def parse_message(source: str, where: str, name: str, raw: Any, typed: bool = True) -> Message:
    """One ``Name = { id = .., type = .., permissionGroup = .., ... }`` entry. Unknown keys are ignored and
    ``type`` is required, as KeyOS's ``Message`` derive has it (``os/app-manifest/src/lib.rs``); the capability
    matrix (``typed=False``) leaves it out where keyos.md does not state it."""
    if not isinstance(raw, dict):
        raise _fail(source, where, f"message {name!r} is not a table", "write it as { id = N, type = \"...\" }")
    mid = raw.get("id")
    if not isinstance(mid, int) or isinstance(mid, bool) or mid < 0:
        raise _fail(source, f"{where}.{name}.id", f"{mid!r} is not a message id", "give a non-negative integer")
    mtype = raw.get("type")
    if (typed or mtype is not None) and mtype not in MESSAGE_TYPES:
        raise _fail(source, f"{where}.{name}.type", f"{mtype!r} is unknown", f"use one of {', '.join(MESSAGE_TYPES)}")
    group = raw.get("permissionGroup")
    if group is not None and (not isinstance(group, str) or group.count(".") != 1 or not all(group.split("."))):
        raise _fail(source, f"{where}.{name}.permissionGroup", f"{group!r} is not <group>.<subgroup>",
                    "write e.g. \"device-secrets.app-scoped-seed\"")
    sig = raw.get("requiredSignature")
    if sig is not None and sig not in SIGNATURES:
        raise _fail(source, f"{where}.{name}.requiredSignature", f"{sig!r} is unknown", "use thirdParty or foundation")
    approval = raw.get("approval", "notUserGrantable")
    if approval not in APPROVALS:
        raise _fail(source, f"{where}.{name}.approval", f"{approval!r} is unknown", f"use one of {', '.join(APPROVALS)}")
    return Message(name, mid, mtype, group, sig, approval, raw.get("cfg"))


def parse_servers(source: str, raw: Any, where: str = "servers", typed: bool = True) -> dict[str, dict[str, Message]]:
    """A ``{server: {MessageName: Message}}`` table: an app's exposed servers or an API manifest."""
    if not isinstance(raw, dict):
        raise _fail(source, where, "is not a table of servers", "write [servers.\"os/name\"] tables")
    out: dict[str, dict[str, Message]] = {}
    for server, msgs in raw.items():
        if not isinstance(msgs, dict):
            raise _fail(source, f"{where}.{server}", "is not a table of messages", "map message names to { id, type }")
        parsed = [parse_message(source, f"{where}.{server}", n, m, typed) for n, m in msgs.items()]
        ids = [m.id for m in parsed]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise _fail(source, f"{where}.{server}", f"message ids {sorted(dup)} are used twice", "give each message its own id")
        out[server] = {m.name: m for m in parsed}
    return out


def _app_id(source: str, raw: Any) -> str:
    if not isinstance(raw, str) or not _APP_ID.fullmatch(raw):
        raise _fail(source, "appId", f"{raw!r} is not an app id", "write \"0x\" followed by exactly 32 hex digits")
    return raw.lower()


def _app_name(source: str, raw: Any) -> dict[str, str]:
    """``BTreeMap<Locale, String>``: required, but it may be empty (KeyOS then names the app "N/A")."""
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise _fail(source, "appName", "must be a table of locale = \"name\"", "write [appName] en = \"My App\"")
    return dict(raw)


def _str_list(source: str, fld: str, raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise _fail(source, fld, "must be a list of strings", "write [\"A\", \"B\"]")
    return list(raw)


def load_templates(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """``permission_templates.toml``: ``[<template>] "<server>" = ["Message", ...]``."""
    source = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ManifestError(f"{source}: cannot read permission templates ({e}); give a valid TOML file") from None
    out: dict[str, dict[str, list[str]]] = {}
    for name, servers in raw.items():
        if not isinstance(servers, dict):
            raise _fail(source, name, "is not a table", "write [template] \"os/server\" = [\"Message\"]")
        out[name] = {s: _str_list(source, f"{name}.{s}", v) for s, v in servers.items()}
    return out


def _current(source: str, form: str, raw: dict[str, Any], templates: dict[str, dict[str, list[str]]] | None) -> Manifest:
    version = raw.get("manifestVersion", "0")
    if version != "0":
        raise _fail(source, "manifestVersion", f"{version!r} is not supported", "use \"0\" (the only schema version)")
    for key in ("version", "publisher", "description", "minKeyosVersion"):
        if key in raw and not isinstance(raw[key], str):
            raise _fail(source, key, "must be a string", f"write {key} = \"...\"")
    perms_raw = raw.get("permissions", {})
    if not isinstance(perms_raw, dict):
        raise _fail(source, "permissions", "must be a table of server = [message names]",
                    "write [permissions] \"os/fs\" = [\"ReadFile\"]")
    permissions: dict[str, list[str]] = {}

    def add(server: str, names: list[str]) -> None:
        have = permissions.setdefault(server, [])
        have.extend(n for n in names if n not in have)

    for tname in _str_list(source, "permissions.template", perms_raw.get("template", [])):
        if templates is None:
            raise _fail(source, "permissions.template", f"uses template {tname!r} but no templates were given",
                        "load it with the repository's permission_templates.toml")
        if tname not in templates:
            raise _fail(source, "permissions.template", f"template {tname!r} is not defined",
                        f"use one of {', '.join(sorted(templates))}")
        for server, names in templates[tname].items():
            add(server, names)
    for server, names in perms_raw.items():
        if server != "template":
            add(server, _str_list(source, f"permissions.{server}", names))
    return Manifest(
        source=source, form=form, app_id=_app_id(source, raw.get("appId")), app_name=_app_name(source, raw.get("appName")),
        version=raw.get("version"), publisher=raw.get("publisher"), description=raw.get("description"),
        min_keyos_version=raw.get("minKeyosVersion"),
        servers=parse_servers(source, raw.get("servers", {})), permissions=permissions,
        memory=_str_list(source, "memory", raw.get("memory", [])),
        syscall=_str_list(source, "syscall", raw.get("syscall", [])),
        file_hashes=_file_hashes(source, raw))


def _file_hashes(source: str, raw: dict[str, Any]) -> dict[str, str]:
    hashes = raw.get("fileHashes", {})
    if not isinstance(hashes, dict) or not all(isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{64}", v)
                                               for v in hashes.values()):
        raise _fail(source, "fileHashes", "must map paths to bare sha256 hex", "write \"app.elf\" = \"<64 hex>\"")
    return {path: digest.lower() for path, digest in hashes.items()}  # hex::decode_to_slice takes either case


def _release_1_0_0(source: str, raw: dict[str, Any]) -> Manifest:
    ranges: dict[str, list[tuple[int, int]]] = {}
    for i, entry in enumerate(raw["permissions"]):
        where = f"permissions[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("server"), str) or not isinstance(entry.get("messages"), str):
            raise _fail(source, where, "must be {\"server\": \"os/...\", \"messages\": \"A..B\"}", "give a server name and an id range")
        m = _RANGE.fullmatch(entry["messages"])
        if not m or int(m[1]) >= int(m[2]):
            raise _fail(source, f"{where}.messages", f"{entry['messages']!r} is not a non-empty range",
                        "write \"START..END\" (END exclusive, START < END)")
        ranges.setdefault(entry["server"], []).append((int(m[1]), int(m[2])))
    servers_raw = raw.get("servers", [])
    if not isinstance(servers_raw, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str) for s in servers_raw):
        raise _fail(source, "servers", "must be a list of {\"name\": ...}", "write [{\"name\": \"os/x\", \"messages\": []}]")
    return Manifest(source=source, form="release-1.0.0", app_id=_app_id(source, raw.get("appId")),
                    app_name=_app_name(source, raw.get("appName")),
                    servers={s["name"]: {} for s in servers_raw}, permission_ranges=ranges,
                    file_hashes=_file_hashes(source, raw))


def manifest_json(data: bytes) -> bytes:
    """The JSON of a ``manifest.json``: after its cosign2 header when it is signed, as built."""
    signed = data[:4] in {m.value for m in cosign2.Magic}
    return data[cosign2.DEFAULT_SIZE:] if signed else data


def loads(data: bytes | str, source: str, templates: dict[str, dict[str, list[str]]] | None = None) -> Manifest:
    """Parse a manifest; the form is told by the syntax (TOML vs JSON) and the permissions' shape.
    A signed ``manifest.json`` is read past its header; its signature is checked by whoever trusts it."""
    try:
        text = manifest_json(data).decode("utf-8", "strict") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise ManifestError(f"{source}: not UTF-8 text; a manifest is UTF-8 TOML or JSON") from None
    if source.endswith(".toml"):
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ManifestError(f"{source}: not valid TOML ({e}); fix the syntax") from None
        return _current(source, "toml", raw, templates)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{source}: not valid JSON ({e.msg} at line {e.lineno}); fix the syntax") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{source}: top level is not an object; a manifest is a JSON object")
    if isinstance(raw.get("permissions"), list):
        return _release_1_0_0(source, raw)
    return _current(source, "json", raw, templates)


def load(path: str | Path, templates: dict[str, dict[str, list[str]]] | None = None) -> Manifest:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ManifestError(f"{path}: cannot read manifest ({e.strerror}); check the path") from None
    return loads(data, str(path), templates)


def load_dir(root: str | Path, templates: dict[str, dict[str, list[str]]] | None = None) -> list[Manifest]:
    """Every ``<app>/manifest.json`` (or ``.toml``) under ``root``, sorted by app directory name."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: no such directory; point at a directory of <app>/manifest.json")
    found = []
    for app_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for name in ("manifest.json", "manifest.toml"):
            if (app_dir / name).is_file():
                found.append(load(app_dir / name, templates))
                break
    if not found:
        raise ManifestError(f"{root}: no <app>/manifest.json or manifest.toml found; point at an apps directory")
    return found


# ---------------------------------------------------------------------------------- signing


def sign_manifest(manifest: Manifest, secret: bytes, *, version: str, timestamp: int) -> bytes:
    """``manifest.json`` as KeyOS's builder writes it: the JSON behind a developer cosign2 header
    (xtask ``builder.rs``: ``cosign2 sign --developer``), signed with a 32-byte secp256k1 secret."""
    import coincurve

    return cosign2.sign(manifest.dumps(), coincurve.PrivateKey(secret), version=version, timestamp=timestamp,
                        developer=True)


# ------------------------------------------------------------------------ capability matrix


@dataclass
class CapabilityMatrix:
    """Every service's messages and policy (keyos.md §1.3), read from ``capability_matrix.toml``."""

    servers: dict[str, dict[str, Message]]
    sources: dict[str, str]
    aliases: dict[str, str]  # release 1.0.0 name -> current name
    labels: dict[str, str]  # subgroup -> UI label

    def canonical(self, server: str) -> str:
        return self.aliases.get(server, server)

    def message(self, server: str, name: str) -> Message | None:
        return self.servers.get(self.canonical(server), {}).get(name)

    def by_id(self, server: str, mid: int) -> Message | None:
        return next((m for m in self.servers.get(self.canonical(server), {}).values() if m.id == mid), None)

    def label(self, subgroup: str) -> str:
        """The subgroup's UI label; the raw key where the catalog has none, as the app-manager does."""
        return self.labels.get(subgroup, subgroup)


def load_capability_matrix(path: str | Path) -> CapabilityMatrix:
    source = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ManifestError(f"{source}: cannot read the capability matrix ({e}); give a valid TOML file") from None
    servers_raw = raw.get("servers")
    if not isinstance(servers_raw, dict) or not servers_raw:
        raise _fail(source, "servers", "missing", "add [servers.\"os/name\".messages] tables")
    labels = raw.get("subgroups", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise _fail(source, "subgroups", "must map subgroup keys to labels", "write \"group.sub\" = \"Label\"")
    servers, sources, aliases = {}, {}, {}
    for name, entry in servers_raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
            raise _fail(source, f"servers.{name}.source", "missing", "name the API manifest the messages come from")
        servers.update(parse_servers(source, {name: entry.get("messages", {})}, typed=False))
        sources[name] = entry["source"]
        for alias in _str_list(source, f"servers.{name}.aliases", entry.get("aliases", [])):
            aliases[alias] = name
    for server, msgs in servers.items():
        for m in msgs.values():
            if m.permission_group and m.permission_group not in labels:
                raise _fail(source, f"servers.{server}.messages.{m.name}.permissionGroup",
                            f"{m.permission_group!r} has no label", "add it to [subgroups]")
    return CapabilityMatrix(servers, sources, aliases, dict(labels))
