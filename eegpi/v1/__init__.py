"""Generated protobuf/gRPC modules (built from proto/eegpi/v1 by hatch_build.py; not in git)."""
