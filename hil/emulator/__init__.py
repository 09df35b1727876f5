"""The emulated Prime. It is the device: it may import the pure format codecs of the harness
(hil.link.protocol, hil.flash.cosign2, hil.flash.manifest, hil.stimuli.ur) and nothing else of it."""
