"""Plain PyTorch models built from a DataSpec; no Lightning inside."""
