"""kopf handlers: importing this package registers them."""

from transfer_operator.handlers import operator, transferjob

__all__ = ["operator", "transferjob"]
