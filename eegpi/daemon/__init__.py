"""The daemon: config, pipeline manager and the wiring of acquisition, broker and gRPC."""
