"""The matching rules of hil.vision.match, one behaviour per case."""

import pytest

from hil.vision.match import TextKind, canonical, find

P, A, M, W, E = TextKind.PROSE, TextKind.ADDRESS, TextKind.AMOUNT, TextKind.WORDS, TextKind.EXACT
ADDR = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"


@pytest.mark.parametrize("expected, observed, kind, found", [
    # prose: case, whitespace and the 1/l/I, 0/O confusions are forgiven
    ("Allow Access?", ["ALLOW ACCESS?"], P, True),
    ("Not Now", ["NotNow"], P, True),
    ("Never Allow", ["Never AIIow"], P, True),
    ("Bitcoin Wallet wants to access App-scoped seed", ["Bitcoin Wallet wants to access", "App-scoped seed"], P, True),
    ("Bitcoin Wallet wants to access…", ["Bitcoin Wallet wants to access..."], P, True),
    ("Allow Access?", ["Allow Acess?"], P, False),
    ("Always Allow", ["Never Allow"], P, False),
    # addresses: exact characters, wrapping allowed, no confusion, no longer run
    (ADDR, ["to bc1qxy2kgdygjrsq", "tzq2n0yrf2493p83kk", "fjhx0wlh"], A, True),
    (ADDR, ["to bclqxy2kgdygjrsq", "tzq2n0yrf2493p83kk", "fjhx0wlh"], A, False),
    (ADDR, [ADDR.replace("0", "O")], A, False),
    (ADDR, [ADDR.upper()], A, False),
    (ADDR, [ADDR + "q"], A, False),
    (ADDR, ["x" + ADDR], A, False),
    # amounts: exact, and never part of a longer number
    ("0.5 BTC", ["Send 0.5 BTC"], M, True),
    ("0.5 BTC", ["Send 0.5BTC"], M, True),
    ("0.5 BTC", ["Send 10.5 BTC"], M, False),
    ("0.5", ["0.55 BTC"], M, False),
    ("0.5", ["0,5"], M, False),
    ("1,420 sats", ["Fee: 1,420 sats"], M, True),
    ("1,420 sats", ["Fee: l,420 sats"], M, False),
    # words: whole words, in order, consecutive, case-insensitive, no confusion
    ("riot cotton", ["riot cotton"], W, True),
    ("riot cotton", ["1. Riot", "2. Cotton"], W, True),
    ("riot cotton", ["cotton riot"], W, False),
    ("riot cotton", ["riot", "big", "cotton"], W, False),
    ("riot cotton", ["rlot cotton"], W, False),
    ("riot cotton", ["patriot cotton"], W, False),
    # exact: case and characters, whitespace runs are one space
    ("Enter PIN", ["Enter  PIN"], E, True),
    ("Enter PIN", ["Enter Pin"], E, False),
])
def test_rules(expected, observed, kind, found):
    assert (find(expected, observed, kind) is not None) is found


def test_match_names_the_lines_it_spans():
    lines = ["Allow Access?", "Bitcoin Wallet wants to access", "App-scoped seed", "Not Now"]
    m = find("wants to access App-scoped seed", lines, P)
    assert m.lines == (1, 2)


def test_canonical_and_empty():
    assert canonical(" a\n  b\u2026 ") == "a b..."
    with pytest.raises(ValueError):
        find("  ", ["x"], P)
    with pytest.raises(ValueError):
        find("12", ["x"], W)
