"""What the lab does to a Prime: NFC, QR codes into its camera, touch and buttons."""
