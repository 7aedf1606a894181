"""The read model: what the console and `status` know of every environment (sources, state, refresh)."""
