"""Shared code of the apps that has no models and imports none of them (the ground floor)."""
