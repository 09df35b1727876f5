"""SeedQR against SeedSigner's published test vectors (SeedSigner/seedsigner docs/seed_qr/README.md,
"Test SeedQRs": vectors 1, 2, 4, 6 and 9), and the QR sizes that document states."""

import pytest
import zxingcpp

from hil.stimuli import qr, seedqr

VECTORS = [  # (mnemonic, standard digit stream, compact bytes)
    ("attack pizza motion avocado network gather crop fresh patrol unusual wild holiday candy pony ranch winter "
     "theme error hybrid van cereal salon goddess expire",
     "011513251154012711900771041507421289190620080870026613431420201617920614089619290300152408010643",
     b'\x0et\xb6A\x07\xf9L\xc0\xcc\xfa\xe6\xa1=\xcb\xec6b\x15O\xecg\xe0\xe0\t\x99\xc0x\x92Y}\x19\n'),
    ("atom solve joy ugly ankle message setup typical bean era cactus various odor refuse element afraid meadow "
     "quick medal plate wisdom swap noble shallow",
     "011416550964188800731119157218870156061002561932122514430573003611011405110613292018175411971576",
     b"\x0eY\xdd\xe2v\x00\x93\x17\xf1'_\x13\x89\x88\x80x\xc9\x93h\xd1\xe8$\x89\xb5\xf6)S\x1f\xc5\xb6\xa5n"),
    ("forum undo fragile fade shy sign arrest garment culture tube off merit",
     "073318950739065415961602009907670428187212261116",
     b'[\xbd\x9dq\xa8\xecy\x90\x83\x1a\xff5\x9dBeE'),
    ("approve fruit lens brass ring actual stool coin doll boss strong rate",
     "008607501025021714880023171503630517020917211425",
     b'\n\xcb\xba\x00\x8d\x9b\xa0\x05\xf5\x99k@\xa3G\\\xd9'),
    ("vocal tray giggle tool duck letter category pattern train magnet excite swamp",
     "196218530783182905421028028912901848107106301753",
     b'\xf5\\\xf5\x87\xf2T=\x01\t\r\n\xe7\x10\xbd;m'),
]


@pytest.mark.parametrize("mnemonic, digits, entropy", VECTORS)
def test_vectors_both_ways(mnemonic, digits, entropy):
    assert seedqr.standard(mnemonic) == digits
    assert seedqr.compact(mnemonic) == entropy
    assert seedqr.decode(digits) == mnemonic
    assert seedqr.decode(entropy) == mnemonic


@pytest.mark.parametrize("mnemonic, digits, entropy", [VECTORS[0], VECTORS[2]])
def test_qr_sizes_as_published(mnemonic, digits, entropy):
    """12 words: Standard 25x25, Compact 21x21; 24 words: Standard 29x29, Compact 25x25 (error level L)."""
    big = len(mnemonic.split()) == 24
    assert qr.symbol(digits, "l").symbol_size(border=0)[0] == (29 if big else 25)
    assert qr.symbol(entropy, "l").symbol_size(border=0)[0] == (25 if big else 21)


@pytest.mark.parametrize("mnemonic, digits, entropy", [VECTORS[1], VECTORS[3], VECTORS[4]])
def test_compact_with_nul_cr_lf_reads_back(mnemonic, digits, entropy):
    """The bytes that trip readers (\\x00, \\r\\n) survive rendering and a zxing-cpp read."""
    (result,) = zxingcpp.read_barcodes(qr.render(entropy))
    assert result.bytes == entropy
    assert seedqr.decode(result.bytes) == mnemonic


@pytest.mark.parametrize("bad, match", [
    ("forum undo fragile", "12- or 24-word"),
    ("forum undo fragile fade shy sign arrest garment culture tube off xyzzy", "not BIP39"),
    ("forum undo fragile fade shy sign arrest garment culture tube off off", "checksum"),
])
def test_bad_mnemonics(bad, match):
    with pytest.raises(seedqr.SeedQRError, match=match):
        seedqr.standard(bad)


@pytest.mark.parametrize("bad, match", [
    ("0733", "48 or 96 digits"), ("9999" * 12, "beyond the 2048"), (b"\0" * 15, "16 or 32 bytes"),
    ("0733" * 12, "checksum"),
])
def test_bad_payloads(bad, match):
    with pytest.raises(seedqr.SeedQRError, match=match):
        seedqr.decode(bad)
