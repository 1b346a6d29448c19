"""Delivery: an alert as text per service (render), a chart (chart), apprise (send), the outbox (outbox).

Importing this package imports neither apprise nor matplotlib: `send` and `chart` load them when used.
"""
