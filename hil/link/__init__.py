"""The KeyOS usb-debug link: wire protocol, transports (usb, tcp), device client."""
