"""The action layer: every change a person can make, defined once (no Textual here)."""
