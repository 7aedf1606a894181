"""Backends: one module per system. Blocking SDKs run in threads; every call has a timeout."""
