"""Transactional outbox: events are rows written with the change, relayed to Kafka afterwards.

Wording, everywhere in the service: a use case *enqueues* an event (a row in ``outbox_events``,
same transaction as the change: :mod:`.writer`); the relay *publishes* it (sends it to Kafka:
:mod:`.relay`).
"""
