"""Adapters to the outside world; each module wraps one third-party library."""
