"""Composition roots: the CLI and the deployments. The only code that wires several parts."""
