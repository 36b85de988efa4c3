"""Logging filters for ``django.request`` that keep the console readable."""
from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied


class RefusalWithoutTracebackFilter(logging.Filter):
    """A refused request (403, ``PermissionDenied``) is logged as one line, without a traceback.

    Django logs "Forbidden (Permission denied)" with the exception attached,
    so every click of a view-only user on something they may not do wrote a
    full traceback, which reads like a crash. The refusal is expected
    behaviour: the line stays (who was refused what is worth seeing), the
    traceback goes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if getattr(record, "status_code", None) == 403 and isinstance(exc, PermissionDenied):
            record.exc_info, record.exc_text = None, None
        return True
