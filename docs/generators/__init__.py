"""The generated parts of the documentation, one module per subject (see docs/hooks.py)."""
