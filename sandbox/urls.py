"""Sandbox URLs: /sandbox/xurrent/... and /sandbox/zenduty/... (see sandbox/README)."""
urlpatterns: list = []
