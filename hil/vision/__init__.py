"""What the lab sees of a Prime: camera capture, screen location, OCR, QR decoding, goldens."""
