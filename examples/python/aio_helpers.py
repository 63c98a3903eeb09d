"""Helpers of examples/python/aio_handlers.py: the "database" call, blocking
code that lives in the application's own module, not in the handler."""
import time


def slow_query(block):
    time.sleep(block)  # QUERY_LINE: the blocking line
