"""KeyOS's app-manager: installed bundles, publisher certificates, launch checks, permissions, grants.

* Launch (``LaunchFailureReason``, keyos.md §1.4, §3.2): a sideloaded bundle launches only when its
  ``app.elf`` carries a cosign2 header that verifies, signed either by Foundation (both pairs, known
  keys) or by a publisher (pair 2 only) whose installed X.509 certificate is valid now, and when its
  ``manifest.json`` carries a cosign2 header by the same signer and lists the ELF's hash.
* Per-connection permissions: from the manifest's declared messages and the capability matrix;
  a message whose signature tier the app does not meet is left out, a grant-on-first-use message is
  in only once its subgroup is approved (``permission_catalog.rs``).
* ``GetPermissionRequestInfo`` for the broker, and ``permission_grants.json`` in the app-manager's
  AppData: ``{"grants": {"0x<app id>": {"<subgroup>": true|false}}}`` (``permission_grants.rs``).
  "Not Now" is kept in memory for the requesting run only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID

from hil.emulator.defects import Defects
from hil.emulator.fs import FileSystem, Location
from hil.emulator.kernel import MessagePermissions
from hil.flash import cosign2
from hil.flash.manifest import CapabilityMatrix, Manifest, ManifestError, Message, loads

# its own app id, whose AppData keeps the grants (os/app-manager/manifest.toml appId; permission_grants.rs)
APP_MANAGER_ID = bytes.fromhex("bf5cdfbfda7e85b5253ff268d32ea957")
GRANTS_FILE = "permission_grants.json"
RESOURCES = "resources/"  # a bundle's folder that fs serves as its AppResources location (keyos.md §2.1)
MAX_CERT_BYTES = 16 * 1024


class CertificateError(ValueError):
    """A publisher certificate KeyOS would refuse to import."""


@dataclass(frozen=True)
class PublisherCert:
    fingerprint: str  # sha256 of the 33-byte compressed pubkey, lowercase hex
    pubkey: bytes
    not_before: int
    not_after: int


def publisher_fingerprint(pubkey: bytes) -> str:
    return hashlib.sha256(pubkey).hexdigest()


def parse_publisher_cert(pem: bytes, defects: Defects = Defects()) -> PublisherCert:
    """X.509 v3, secp256k1, CA:FALSE, digitalSignature, EKU codeSigning, at most 16 KiB."""
    if len(pem) > MAX_CERT_BYTES:
        raise CertificateError("certificate larger than 16 KiB")
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise CertificateError(f"not a PEM X.509 certificate ({e})") from None
    if cert.version is not x509.Version.v3:
        raise CertificateError("not an X.509 v3 certificate")
    key = cert.public_key()
    any_curve = defects.has("certificate-key-on-any-curve")
    if not isinstance(key, ec.EllipticCurvePublicKey) or not (isinstance(key.curve, ec.SECP256K1) or any_curve):
        raise CertificateError("key is not secp256k1")
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as e:
        raise CertificateError(f"missing extension ({e})") from None
    flaws = (basic.ca, not usage.digital_signature, ExtendedKeyUsageOID.CODE_SIGNING not in eku)
    if all(flaws) if defects.has("certificate-profile-flaws-must-all-be-there") else any(flaws):
        raise CertificateError("must be CA:FALSE with digitalSignature and codeSigning")
    pub = key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    return PublisherCert(publisher_fingerprint(pub), pub, int(cert.not_valid_before_utc.timestamp()),
                         int(cert.not_valid_after_utc.timestamp()))


@dataclass
class InstalledApp:
    app_id: bytes
    manifest: Manifest | None  # None: a built-in with no manifest loaded (it connects nowhere)
    foundation: bool
    sideloaded: bool
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest else f"0x{self.app_id.hex()}"


@dataclass(frozen=True)
class PromptInfo:
    app_id: bytes
    app_name: str
    subgroup: str
    label: str


class AppManager:
    def __init__(self, matrix: CapabilityMatrix, fs: FileSystem, defects: Defects,
                 trusted_keys: frozenset[bytes], keyos_version: str):
        self.matrix = matrix
        self.fs = fs
        self.defects = defects
        self.trusted_keys = trusted_keys
        self.keyos_version = keyos_version
        self.apps: dict[bytes, InstalledApp] = {}
        self.certs: dict[str, PublisherCert] = {}
        self._deny_for_run: set[tuple[int, str]] = set()  # (pid, subgroup)

    # ------------------------------------------------------------ installing

    def install_builtin(self, manifest: Manifest) -> InstalledApp:
        app = InstalledApp(manifest.app_id_bytes, manifest, foundation=True, sideloaded=False)
        self.apps[app.app_id] = app
        return app

    def may_sideload(self, app_id: bytes) -> bool:
        """A sideload never replaces a built-in (Foundation) app."""
        existing = self.apps.get(app_id)
        return existing is None or existing.sideloaded or self.defects.has("sideload-shadows-foundation-app")

    def install_sideloaded(self, app_id: bytes, files: dict[str, bytes]) -> InstalledApp:
        """The bundle's ``resources/`` become the app's ``AppResources`` location (fs ``RegisterAppResources``)."""
        app = InstalledApp(app_id, None, foundation=False, sideloaded=True, files=dict(files))
        self.apps[app_id] = app
        for path, data in files.items():
            if path.startswith(RESOURCES):
                self.fs.system_write(Location.AppResources, app_id, path.removeprefix(RESOURCES), data)
        return app

    def import_certificate(self, fingerprint: str, pem: bytes) -> PublisherCert:
        cert = parse_publisher_cert(pem, self.defects)
        if self.defects.has("certificate-installed-despite-fingerprint"):
            self.certs[cert.fingerprint] = cert
        short = self.defects.has("certificate-fingerprint-judged-by-its-short-form")
        judged = (lambda f: (f[:8], f[-8:])) if short else (lambda f: f)  # the defect: as the UI shows it
        if judged(cert.fingerprint) != judged(fingerprint):
            raise CertificateError(f"fingerprint {fingerprint} does not match the certificate's key {cert.fingerprint}")
        self.certs[cert.fingerprint] = cert
        return cert

    # ------------------------------------------------------------ launching

    def verify_launch(self, app: InstalledApp, now: int) -> str | None:
        """None when the app may launch, else the ``LaunchFailureReason`` name."""
        if not app.sideloaded or (app.manifest is not None and self.defects.has("launch-verdict-kept-from-the-first-launch")):
            return None
        elf, raw_manifest = app.files.get("app.elf"), app.files.get("manifest.json")
        if elf is None and self.defects.has("sideload-launches-without-elf"):
            return None
        if elf is None or raw_manifest is None:
            return "SignatureRejected"
        try:
            verified = cosign2.verify(elf, self.trusted_keys)
        except cosign2.Cosign2Error:
            return "SignatureRejected"
        partial = verified.trust is cosign2.Trust.PARTIALLY_TRUSTED and self.defects.has("sideload-one-signature-is-foundation")
        if verified.trust is cosign2.Trust.FULLY_TRUSTED or partial:
            signer, app.foundation = verified.header.pubkey1, True
        elif verified.trust is cosign2.Trust.THIRD_PARTY:
            cert = self.certs.get(publisher_fingerprint(verified.header.pubkey2))
            if cert is None:
                return "NoCertificate"
            if now == cert.not_before and self.defects.has("sideload-cert-active-a-second-late"):
                return "PublisherCertificateNotYetActive"
            if now < cert.not_before:
                return "PublisherCertificateNotYetActive"
            if now == cert.not_after and self.defects.has("sideload-cert-expires-a-second-early"):
                return "PublisherCertificateExpired"
            if now > cert.not_after and not self.defects.has("sideload-skips-cert-expiry"):
                return "PublisherCertificateExpired"
            signer, app.foundation = verified.header.pubkey2, False
        else:
            return "SignatureRejected"
        try:
            manifest = loads(raw_manifest, f"sideloaded-apps/{app.app_id.hex()}/manifest.json")
        except (ManifestError, UnicodeDecodeError):
            return "SignatureRejected"
        signers = [signer]
        if self.defects.has("sideload-manifest-any-publisher"):
            signers += [c.pubkey for c in self.certs.values()]
        bound = manifest.file_hashes.get("app.elf") == hashlib.sha256(elf).hexdigest()
        authentic = (any(_signed_by(raw_manifest, key, self.trusted_keys) for key in signers)
                     and (bound or self.defects.has("sideload-manifest-not-bound-to-elf")))
        if not authentic and not self.defects.has("sideload-accepts-tampered-manifest"):
            return "SignatureRejected"
        if manifest.app_id_bytes != app.app_id:
            return "SignatureRejected"
        need = manifest.min_keyos_version
        exclusive = need == self.keyos_version and self.defects.has("min-keyos-version-exclusive")
        unreadable_met = self.defects.has("unreadable-min-keyos-version-ignored")
        if need and (_older(self.keyos_version, need, unreadable_met) or exclusive):
            return "KeyOsVersionTooOld"
        app.manifest = manifest
        return None

    # ------------------------------------------------------------ permissions

    def resolve(self, manifest: Manifest, server: str, name: str) -> Message | None:
        """A declared message name on a server: the system matrix, or a server an app exposes."""
        msg = self.matrix.message(server, name)
        if msg is None and self.defects.has("app-server-declarations-ignored"):
            return None
        if msg is None:
            for other in self.apps.values():
                if other.manifest and server in other.manifest.servers:
                    msg = other.manifest.servers[server].get(name)
        return msg

    def connection_permissions(self, app: InstalledApp, server: str) -> MessagePermissions:
        """What app-manager hands the kernel for this app's connection to ``server``."""
        perms = MessagePermissions(self.defects)
        manifest = app.manifest
        if manifest is None:
            return perms
        # a third-party app's 1.0.0 id range declares each message in it, and each keeps its signature tier and
        # grant: KeyOS resolves every declared permission to its message (xous/names/src/main.rs
        # process_manifest_permissions) and app-manager holds it to its tier (permission_catalog.rs). The release's
        # own Foundation apps keep their ranges whole, as release 1.0.0 ran them.
        withheld = set() if app.foundation or self.defects.has("ranged-permissions-skip-the-signature-tier") else \
            {m.id for m in self.matrix.servers.get(self.matrix.canonical(server), {}).values()
             if not self._granted_at_connect(app, m)}
        every = self.defects.has("ranged-permissions-apply-to-every-server")
        for srv, ranges in manifest.permission_ranges.items():
            if every or self.matrix.canonical(srv) == self.matrix.canonical(server):
                for a, b in ranges:
                    perms.add_ids([mid for mid in range(a, b) if mid not in withheld])
        ids = []
        for srv, names in manifest.permissions.items():
            if self.matrix.canonical(srv) != self.matrix.canonical(server):
                continue
            for name in names:
                msg = self.resolve(manifest, srv, name)
                if msg is not None and self._granted_at_connect(app, msg):
                    ids.append(msg.id)
        perms.add_ids(ids)
        return perms

    def _tier_ok(self, app: InstalledApp, msg: Message) -> bool:
        return msg.signature_satisfied_by(app.foundation) or self.defects.has("foundation-tier-not-enforced")

    def _granted_at_connect(self, app: InstalledApp, msg: Message) -> bool:
        if not self._tier_ok(app, msg):
            return False
        if msg.approval == "grantOnFirstUse":
            unprompted = msg.name == "GetAppSeed" and self.defects.has("app-seed-without-prompt")
            return self.grant_state(app.app_id, msg) is True or unprompted
        return True

    def request_info(self, app_id: bytes, pid: int, server: str, mid: int) -> PromptInfo | str:
        """``GetPermissionRequestInfo``: a prompt to show, or AlreadyApproved / Denied / NotGrantable /
        AppNotFound / Unauthorized."""
        app = self.apps.get(app_id)
        if app is None or app.manifest is None:
            return "AppNotFound"
        msg = self.matrix.by_id(server, mid)
        if msg is None:
            return "NotGrantable"
        same = self.matrix.canonical(server)
        declared = any(msg.name in names for srv, names in app.manifest.permissions.items()
                       if self.matrix.canonical(srv) == same) or \
            any(a <= mid < b for srv, ranges in app.manifest.permission_ranges.items()
                if self.matrix.canonical(srv) == same for a, b in ranges)
        if msg.approval == "grantOnFirstUse" and self.defects.has("approved-subgroup-answers-undeclared") and \
                self.grant_state(app_id, msg) is True:
            return "AlreadyApproved"
        if not declared or not self._tier_ok(app, msg):
            return "Unauthorized"
        if msg.approval != "grantOnFirstUse" or not msg.permission_group:
            return "NotGrantable"
        state = self.grant_state(app_id, msg)
        if state is True:
            return "AlreadyApproved"
        if state is False and not self.defects.has("broker-ignores-persisted-deny"):
            return "Denied"
        key = self._grant_key(msg)
        if (pid, key) in self._deny_for_run or \
                self.defects.has("not-now-denies-every-app") and any(k == key for _, k in self._deny_for_run):
            return "Denied"
        return PromptInfo(app_id, app.name, msg.permission_group, self.matrix.label(msg.permission_group))

    def _grant_key(self, msg: Message) -> str:
        if self.defects.has("grant-per-message-not-subgroup"):
            return f"{msg.permission_group}/{msg.name}"
        if self.defects.has("grant-per-group-not-subgroup"):
            return (msg.permission_group or "").split(".")[0]
        return msg.permission_group or ""

    def grant_state(self, app_id: bytes, msg: Message) -> bool | None:
        return self._grants().get(f"0x{app_id.hex()}", {}).get(self._grant_key(msg))

    def set_grant(self, app_id: bytes, pid: int, msg: Message, decision: str) -> None:
        """``SetAppPermissionGrant``: Allow / Deny persist per subgroup; DenyForRun only for this run."""
        key = self._grant_key(msg)
        if decision == "DenyForRun" and not self.defects.has("broker-persists-not-now"):
            self._deny_for_run.add((pid, key))
            return
        grants = self._grants()
        grants.setdefault(f"0x{app_id.hex()}", {})[key] = decision == "Allow"
        self.fs.system_write(Location.AppData, APP_MANAGER_ID, GRANTS_FILE,
                             json.dumps({"grants": grants}, indent=2, sort_keys=True).encode())

    def forget_run(self, pid: int) -> None:
        self._deny_for_run = {d for d in self._deny_for_run if d[0] != pid}

    def _grants(self) -> dict[str, dict[str, bool]]:
        raw = self.fs.system_read(Location.AppData, APP_MANAGER_ID, GRANTS_FILE)
        if raw is None:
            return {}
        try:
            grants = json.loads(raw)["grants"]
        except (ValueError, KeyError, TypeError):
            return {}  # a corrupt store grants nothing
        return grants if isinstance(grants, dict) else {}


def _older(have: str, need: str, unreadable_met: bool = False) -> bool:
    """Whether KeyOS ``have`` is below the app's ``need``; a version that is no SemVer cannot be met (fail closed)."""
    try:
        return cosign2.semver_key(have) < cosign2.semver_key(need)
    except ValueError:
        return not unreadable_met


def _signed_by(data: bytes, signer: bytes, trusted_keys: frozenset[bytes]) -> bool:
    """True when ``data`` carries a cosign2 header that verifies and names ``signer`` as its signer."""
    try:
        header = cosign2.verify(data, trusted_keys).header
    except cosign2.Cosign2Error:
        return False
    return signer in (header.pubkey1 if header.signature1 != bytes(64) else None,
                      header.pubkey2 if header.signature2 != bytes(64) else None)
