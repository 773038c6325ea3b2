"""Walking a network's blocks."""

__all__ = ['walk_blocks']


def walk_blocks(block, stop=None):
    """Yield ``block`` and its descendants depth-first in registration order (execution
    order for sequential networks); children of a block for which ``stop(block)`` is true
    are not visited."""
    yield block
    if stop is not None and stop(block):
        return
    for child in block._children.values():
        yield from walk_blocks(child, stop)
