"""Firmware images (cosign2, release bundles, manifests, boot.img), SAM-BA, flashing."""
