"""The pure core: breakout state machines, release outcomes, conditions and rules.

Nothing here does I/O or reads the clock: it takes data and `now` and returns new state and alerts.
"""
