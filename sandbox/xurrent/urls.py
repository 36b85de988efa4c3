"""Routes of this simulator (filled in by the simulator itself)."""
urlpatterns: list = []
