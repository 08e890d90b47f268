"""Notifications: outbox rows written with the event, delivered through Apprise after commit."""
