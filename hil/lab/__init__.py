"""The lab: configuration, stations, leases, health checks, quarantine."""
