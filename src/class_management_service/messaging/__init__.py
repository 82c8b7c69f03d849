"""Kafka wire format: the platform's event envelope, topics and headers."""
