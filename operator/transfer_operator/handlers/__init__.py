"""kopf handlers: importing this package registers them (start-up and clean-up only: the
scheduling cycle reads every object from its own watches, handlers/informer.py)."""

from transfer_operator.handlers import operator

__all__ = ["operator"]
