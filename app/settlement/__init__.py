"""Durable settlement: every authorization is a row before anything is broadcast."""
