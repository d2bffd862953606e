"""Pipelines: YAML-described DAGs of stages that move numpy blocks from a source to sinks."""
