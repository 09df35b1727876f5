"""KeyOS release bundles ``KeyOS-v<ver>.bin``: a tar carrying ``manifest.json``, cosign2-signed as a whole.

As Foundation's release signer makes them (KeyOS-Releases ``tools/signer``, keyos.md §3.3): the manifest
is ``{"version": "v1.0.0", "files": [{"name": "app.bin", "hash": "0x<sha256 of the file>"}, …]}`` and
names paths relative to it; the tar is then signed (header + tar). Checking a bundle verifies the
outer signature, then every listed file against its hash and its own cosign2 header; a file the
manifest does not cover (other than app ``manifest.json`` files) is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from dataclasses import dataclass

from hil.errors import ConfigError
from hil.flash import cosign2

MANIFEST = "manifest.json"


class ReleaseError(ConfigError):
    """A bundle that must not be installed: the message names the file and the problem."""


@dataclass(frozen=True)
class Release:
    version: str  # "v1.0.0"
    bundle: cosign2.Verified
    files: dict[str, bytes]  # manifest name -> bytes
    verified: dict[str, cosign2.Verified]  # the cosign2-signed files among them

    @property
    def app(self) -> bytes:
        return self.files["app.bin"]


def _members(tar_bytes: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar:
                if member.isdir():
                    continue
                name = posixpath.normpath(member.name)
                if not member.isfile() or name.startswith(("/", "..")):
                    raise ReleaseError(f"bundle member {member.name!r} is not a plain relative file")
                if name in out:
                    raise ReleaseError(f"bundle holds {name!r} twice")
                out[name] = tar.extractfile(member).read()
    except tarfile.TarError as e:
        raise ReleaseError(f"bundle is not a readable tar after its signature header ({e})") from None
    return out


def read(data: bytes, keys: cosign2.KeySet) -> Release:
    """Verify a bundle completely; raises :class:`ReleaseError` (or ``Cosign2Error``) with the reason."""
    try:
        outer = cosign2.verify(data, keys.pubkeys)
    except cosign2.Cosign2Error as e:
        raise ReleaseError(f"bundle signature: {e}") from None
    members = _members(data[outer.header.size:])
    manifests = [n for n in members if posixpath.basename(n) == MANIFEST]
    top = min(manifests, key=lambda n: n.count("/"), default=None)
    if top is None:
        raise ReleaseError(f"bundle has no {MANIFEST}")
    root = posixpath.dirname(top)
    try:
        doc = json.loads(members[top])
        version, entries = doc["version"], doc["files"]
        listed = {e["name"]: e["hash"] for e in entries}
        if not isinstance(version, str) or len(listed) != len(entries):
            raise TypeError("version must be a string and names unique")
    except (ValueError, KeyError, TypeError) as e:
        raise ReleaseError(f"{MANIFEST} is not {{version, files: [{{name, hash}}]}} ({e})") from None
    if "app.bin" not in listed:
        raise ReleaseError(f"{MANIFEST} does not list app.bin")
    if version.removeprefix("v") != outer.header.version:
        raise ReleaseError(f"{MANIFEST} says {version}, the bundle header says {outer.header.version}")
    files: dict[str, bytes] = {}
    verified: dict[str, cosign2.Verified] = {}
    for name, expected in listed.items():
        path = posixpath.join(root, name) if root else name
        if path not in members:
            raise ReleaseError(f"{name}: listed in {MANIFEST} but missing from the bundle")
        actual = "0x" + hashlib.sha256(members[path]).hexdigest()
        if actual != str(expected).lower():
            raise ReleaseError(f"{name}: hash {actual} does not match {MANIFEST} ({expected}); the file was altered")
        files[name] = members[path]
        if cosign2.parse_unverified(members[path]) is not None:
            try:
                verified[name] = cosign2.verify(members[path], keys.pubkeys)
            except cosign2.Cosign2Error as e:
                raise ReleaseError(f"{name}: {e}") from None
    covered = {posixpath.join(root, n) if root else n for n in listed} | set(manifests)
    extra = sorted(set(members) - covered)
    if extra:
        raise ReleaseError(f"{extra[0]}: in the bundle but not covered by {MANIFEST}")
    return Release(version, outer, files, verified)


def build(files: dict[str, bytes], *, version: str, timestamp: int, signers: list[cosign2.Signer]) -> bytes:
    """A signed bundle as ``tools/signer create-tar`` + ``sign-tar`` make it (signed by one or two signers)."""
    manifest = {"version": f"v{version}",
                "files": [{"name": n, "hash": "0x" + hashlib.sha256(d).hexdigest()} for n, d in files.items()]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in {**files, MANIFEST: json.dumps(manifest, indent=2).encode()}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), timestamp, 0o644
            tar.addfile(info, io.BytesIO(data))
    image = cosign2.sign(buf.getvalue(), signers[0].private_key(), version=version, timestamp=timestamp)
    for signer in signers[1:]:
        image = cosign2.add_second_signature(image, signer.private_key())
    return image
