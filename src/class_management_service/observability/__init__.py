"""Logs, metrics and health: how operators see the service."""
