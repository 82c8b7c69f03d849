"""Retention: keeps ``processed_events`` and published ``outbox_events`` to their windows."""
