"""Local stub servers that speak the real wire formats of the services macrowatch talks to."""
