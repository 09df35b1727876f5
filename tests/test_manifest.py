"""The manifest codec: all three forms, templates, signatures, the capability matrix, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import coincurve
import pytest

from hil.flash import cosign2
from hil.flash import manifest as mf

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "fixtures" / "keyos" / "permission_templates.toml"
MATRIX = ROOT / "fixtures" / "keyos" / "capability_matrix.toml"
APP_ID = "0x" + "5a" * 16

SOURCE = f"""
manifestVersion = "0"
appId = "{APP_ID.upper().replace('0X', '0x')}"
version = "1.4.0"
[appName]
en = "Bitcoin Wallet"
[permissions]
template = ["gui-app", "navigable"]
"os/gui-server" = ["GetPendingNavRequest", "SwitchToLauncher"]
"os/security" = ["GetAppSeed", "GetOsVersionInfo"]
"""


@pytest.fixture(scope="module")
def templates():
    return mf.load_templates(TEMPLATES)


@pytest.fixture(scope="module")
def matrix():
    return mf.load_capability_matrix(MATRIX)


def test_source_toml_expands_templates_once_each(templates):
    m = mf.loads(SOURCE, "apps/gui-app-bitcoin/manifest.toml", templates)
    assert m.form == "toml" and m.app_id == APP_ID.lower() and m.name == "Bitcoin Wallet"
    gui = m.permissions["os/gui-server"]
    assert gui[:7] == templates["gui-app"]["os/gui-server"]
    assert gui.count("GetPendingNavRequest") == 1  # in `navigable` and listed again: declared once
    assert "SwitchToLauncher" in gui and "FinishResponse" in gui
    assert m.permissions["os/settings"] == templates["gui-app"]["os/settings"]
    assert m.permissions["os/security"] == ["GetAppSeed", "GetOsVersionInfo"]


def test_signed_manifest_is_read_past_its_cosign2_header(templates):
    m = mf.loads(SOURCE, "m.toml", templates)
    m.file_hashes = {"app.elf": "ab" * 32}
    key = coincurve.PrivateKey()
    signed = mf.sign_manifest(m, key.secret, version="1.0.0", timestamp=1_800_000_000)
    verified = cosign2.verify(signed, {coincurve.PrivateKey().public_key.format()})
    assert verified.trust is cosign2.Trust.THIRD_PARTY  # --developer: pubkey1 zero, as KeyOS's builder signs
    assert signed[cosign2.DEFAULT_SIZE:] == m.dumps()
    again = mf.loads(signed, "manifest.json")
    assert again.form == "json" and again.permissions == m.permissions and again.file_hashes == m.file_hashes


def test_unknown_keys_are_ignored_as_serde_does():
    doc = {"appId": APP_ID, "appName": {"en": "A"}, "appSignature": "0x00", "futureKey": {"x": 1}, "permissions": {},
           "servers": {"os/x": {"M": {"id": 1, "type": "scalar", "futureMessageKey": True}}}}
    m = mf.loads(json.dumps(doc), "b/manifest.json")
    assert m.app_id == APP_ID and m.servers["os/x"]["M"].id == 1


def test_the_schema_as_keyos_serde_reads_it():
    """``os/app-manifest`` (lib.rs, manifest_v0.rs): ``minKeyosVersion`` in camelCase, file hashes in either case
    of hex, and an ``appName`` table that may be empty (the app is then "N/A")."""
    digest = "AB" * 32
    doc = {"appId": APP_ID, "appName": {}, "minKeyosVersion": "1.4.0-beta1", "fileHashes": {"app.elf": digest}}
    m = mf.loads(json.dumps(doc), "b/manifest.json")
    assert (m.min_keyos_version, m.file_hashes, m.name) == ("1.4.0-beta1", {"app.elf": digest.lower()}, "N/A")
    assert m.to_json_obj()["minKeyosVersion"] == "1.4.0-beta1"
    assert mf.loads(json.dumps({**doc, "minKeyOsVersion": "99.0.0"}), "b/manifest.json").min_keyos_version == "1.4.0-beta1"


def test_release_1_0_0_manifests(release_1_0_0):
    apps = mf.load_dir(release_1_0_0 / "apps")
    assert len(apps) == 12
    assert all(m.form == "release-1.0.0" for m in apps)
    by_name = {m.name: m for m in apps}
    assert by_name["Bitcoin Wallet"].app_id == "0x426974636f696e2057616c6c65740000"
    assert by_name["Bitcoin Wallet"].permission_ranges == {"os/gui-server": [(0, 128)]}
    onboarding = by_name["Onboarding"]
    assert list(onboarding.servers) == ["os/onboarding"]
    assert sorted(onboarding.permission_ranges) == ["os/bt", "os/gui-server", "os/keycard", "os/nfc"]
    assert sorted(by_name["QR Scanner"].permission_ranges) == ["os/camera-server", "os/gui-server"]


def test_release_form_round_trips(release_1_0_0):
    original = mf.load(release_1_0_0 / "apps" / "gui-app-onboarding" / "manifest.json")
    again = mf.loads(original.dumps(), "manifest.json")
    assert again.permission_ranges == original.permission_ranges and list(again.servers) == ["os/onboarding"]


@pytest.mark.parametrize("text,source,field", [
    ('appId = "0x12"\n[appName]\nen = "A"', "a/manifest.toml", "appId"),
    (f'appId = "{APP_ID}"\nappName = "A"', "a/manifest.toml", "appName"),
    (f'appId = "{APP_ID}"\nmanifestVersion = "1"\n[appName]\nen = "A"', "a/manifest.toml", "manifestVersion"),
    (f'appId = "{APP_ID}"\n[appName]\nen = "A"\n[permissions]\ntemplate = ["nope"]', "a/manifest.toml", "permissions.template"),
    (f'appId = "{APP_ID}"\n[appName]\nen = "A"\n[permissions]\n"os/fs" = "ReadFile"', "a/manifest.toml", "permissions.os/fs"),
    (f'appId = "{APP_ID}"\n[appName]\nen = "A"\n[servers."os/x"]\nM = {{ id = -1 }}', "a/manifest.toml", "servers.os/x.M.id"),
    (f'appId = "{APP_ID}"\n[appName]\nen = "A"\n[servers."os/x"]\nM = {{ id = 1, type = "scalar", approval = "ask" }}', "a/manifest.toml",
     "servers.os/x.M.approval"),
    (f'appId = "{APP_ID}"\n[appName]\nen = "A"\n[servers."os/x"]\nM = {{ id = 1, type = "scalar", permissionGroup = "flat" }}',
     "a/manifest.toml", "servers.os/x.M.permissionGroup"),
    (f'appId = "{APP_ID}"\n[appName]\nen = "A"\n[servers."os/x"]\nM = {{ id = 1 }}', "a/manifest.toml", "servers.os/x.M.type"),
    (f'appId = "{APP_ID}"\n[appName]\nen = "A"\n[servers."os/x"]\nM = {{ id = 1, type = "lend" }}', "a/manifest.toml",
     "servers.os/x.M.type"),
    ('{"appId": "%s", "appName": {"en": "A"}, "permissions": [{"server": "os/fs", "messages": "5..5"}]}' % APP_ID,
     "b/manifest.json", "permissions[0].messages"),
    ('{"appId": "%s", "appName": {"en": "A"}, "permissions": [{"server": "os/fs"}]}' % APP_ID, "b/manifest.json",
     "permissions[0]"),
    ('{"appId": "%s", "appName": {"en": "A"}, "fileHashes": {"app.elf": "XYZ"}}' % APP_ID, "b/manifest.json", "fileHashes"),
    ("[1, 2]", "b/manifest.json", "top level"),
    ("{not json", "b/manifest.json", "not valid JSON"),
    ("a = = 1", "a/manifest.toml", "not valid TOML"),
])
def test_malformed_input_is_one_clear_line(text, source, field, templates):
    with pytest.raises(mf.ManifestError) as err:
        mf.loads(text, source, templates)
    message = str(err.value)
    assert message.startswith(source) and field in message and "\n" not in message, message


def test_unreadable_and_non_utf8_files(tmp_path):
    with pytest.raises(mf.ManifestError, match="cannot read manifest"):
        mf.load(tmp_path / "missing.json")
    bad = tmp_path / "manifest.json"
    bad.write_bytes(b"\xff\xfe{")
    with pytest.raises(mf.ManifestError, match="not UTF-8"):
        mf.load(bad)
    with pytest.raises(mf.ManifestError, match="no <app>/manifest.json"):
        mf.load_dir(tmp_path)


def test_templates_without_a_templates_file_are_refused():
    with pytest.raises(mf.ManifestError, match="no templates were given"):
        mf.loads(SOURCE, "m.toml", None)


def test_capability_matrix(matrix, templates):
    seed = matrix.message("os/security", "GetAppSeed")
    assert (seed.id, seed.type, seed.approval, seed.signature) == (8, "blockingArchive", "grantOnFirstUse", "thirdParty")
    assert matrix.label(seed.permission_group) == "App-scoped seed"
    get_seed = matrix.message("os/security", "GetSeed")
    assert get_seed.signature == "foundation" and not get_seed.signature_satisfied_by(False)
    assert matrix.message("os/settings", "GetDeveloperMode").signature == "foundation"  # explicit tier
    assert matrix.by_id("os/camera-server", 1).name == "Subscribe"  # the 1.0.0 name of os/camera
    assert matrix.canonical("os/led-control") == "os/rgb-server"
    for server, msgs in matrix.servers.items():
        assert matrix.sources[server]
        for m in msgs.values():
            if m.approval == "grantOnFirstUse":
                assert m.permission_group, f"{server} {m.name}: grantable without a subgroup"
    for name, servers in templates.items():
        for server, messages in servers.items():
            if server in matrix.servers:
                missing = [m for m in messages if matrix.message(server, m) is None]
                assert not missing, f"template {name}: {server} lacks {missing}"


def test_capability_matrix_bad_input(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text('[subgroups]\n"a.b" = "A"\n[servers."os/x"]\nsource = "x"\n[servers."os/x".messages]\n'
                   'M = { id = 1, permissionGroup = "c.d" }\n')
    with pytest.raises(mf.ManifestError, match=r"servers\.os/x\.messages\.M\.permissionGroup"):
        mf.load_capability_matrix(bad)
    bad.write_text('[servers."os/x".messages]\nM = { id = 1 }\n')
    with pytest.raises(mf.ManifestError, match="servers.os/x.source"):
        mf.load_capability_matrix(bad)
