"""The operators a pipeline's graph is made of (docs/ARCHITECTURE.md): each takes Arrow record
batches from its inputs and returns the batches it emits.

Every operator has the same small interface (``Operator``): ``push(port, batch)`` for a batch
from its input number ``port``, ``on_watermark(wm)`` when its inputs' watermark reaches ``wm``,
``close()`` at the end of the input, ``snapshot()`` / ``restore(state)`` for checkpoints, and
the ``watermark`` its output has reached.
"""
from .base import EVENT_TIME, Operator, RelationSchema

__all__ = ["EVENT_TIME", "Operator", "RelationSchema"]
