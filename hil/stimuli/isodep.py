"""The card side of ISO/IEC 14443-4 (ISO-DEP) block framing on an activated nfcpy target.

Both cards of the bench speak it: the emulated Prime's FIDO card emulation (:mod:`hil.emulator.nfc`)
and the Type 4 tag the harness presents to a Prime (:mod:`hil.stimuli.nfc`). It is a pure codec (no
harness imports, it opens nothing), so the emulator may share it.
"""

from __future__ import annotations

ATS = bytes.fromhex("0578A07002")  # FSCI 8 (256 B), FWI 10 (~309 ms), SFGI 0, no CID/NAD


def serve_card(clf, handler, idle_s: float = 5.0, first: bytes = b"\xE0") -> str:
    """Answer RATS with the ATS, then I-blocks (with command chaining; each whole APDU goes to
    ``handler`` and its answer back), R(NAK) retransmission and S(DESELECT), until the session ends.
    ``first``: the command the activation delivered: RATS, or the first block where the reader's chip
    answered RATS itself (nfcpy's PN53x and RC-S380 drivers). Returns how it ended; never raises for
    what the reader or the RF link does."""
    import nfc.clf

    last, chained = b"", b""
    try:
        cmd = clf.exchange(ATS, idle_s) if first[:1] == b"\xE0" else first
        while cmd:
            pcb = cmd[0]
            if pcb & 0xE2 == 0x02:  # I-block
                if pcb & 0x10:  # chaining: more to come
                    chained += bytes(cmd[1:])
                    rsp = bytes([0xA2 | (pcb & 1)])
                else:
                    apdu, chained = chained + bytes(cmd[1:]), b""
                    rsp = last = bytes([0x02 | (pcb & 1)]) + handler(apdu)
            elif pcb & 0xF6 == 0xB2:  # R(NAK): retransmit if it names our last block, else ACK
                rsp = last if last and (last[0] & 1) == (pcb & 1) else bytes([0xA2 | (pcb & 1)])
            elif pcb == 0xC2:  # S(DESELECT)
                clf.exchange(b"\xC2", 0)
                return "deselect"
            else:
                return f"protocol error (PCB {pcb:02X})"
            cmd = clf.exchange(rsp, idle_s)
        return "link lost"
    except nfc.clf.BrokenLinkError:
        return "field lost"
    except nfc.clf.TimeoutError:
        return "reader went silent"
    except nfc.clf.CommunicationError as e:
        return f"communication error ({e})"
