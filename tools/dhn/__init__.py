"""dhn's tools: importable functions behind thin command-line mains (python -m dhn.<tool>)."""
