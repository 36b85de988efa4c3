"""The sync's handlers, one module per direction (``zenduty_to_xurrent``, ``xurrent_to_zenduty``)."""
