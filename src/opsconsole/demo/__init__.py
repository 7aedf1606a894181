"""The built-in demo sandbox (core: no Textual)."""
