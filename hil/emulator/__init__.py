"""The emulated Prime. It is the device: it may import the pure format codecs of the harness
(hil.link.protocol, hil.stimuli.ur, hil.stimuli.isodep, hil.flash.cosign2, hil.flash.manifest,
hil.flash.bootimg, hil.flash.emulated) and nothing else of it."""
