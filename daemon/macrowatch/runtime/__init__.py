"""The daemon: its jobs (closes, release bursts, delivery, heartbeat), ops alerts and source health, the scheduler
(APScheduler), leadership (one instance per store), the service (signals, systemd notify), /healthz and /metrics, and
logs. Imports config, sources, store, engine and notify; never a command module."""
