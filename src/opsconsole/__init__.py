"""opsconsole: a keyboard-driven terminal operations console."""

__version__ = "0.1.0"
