"""ZeroMQ signal server: protocol v1 over a ROUTER socket, journal, metrics, model lifecycle."""
