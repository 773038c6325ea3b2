"""Walking a network's blocks."""

__all__ = ['walk_blocks', 'named_blocks', 'block_name']


def walk_blocks(block, stop=None):
    """Yield ``block`` and its descendants depth-first in registration order (execution
    order for sequential networks); children of a block for which ``stop(block)`` is true
    are not visited."""
    yield block
    if stop is not None and stop(block):
        return
    for child in block._children.values():
        yield from walk_blocks(child, stop)


def named_blocks(block, path=''):
    """Yield ``(path, block)`` for ``block`` and its descendants, in :func:`walk_blocks`'
    order; ``path`` is the structural name, as in parameter names (``'2.1'`` is child 1 of
    child 2; the block itself is ``''``)."""
    yield path, block
    for key, child in block._children.items():
        yield from named_blocks(child, '%s.%s' % (path, key) if path else key)


def block_name(block, root):
    """``block``'s name inside the network ``root``: its Gluon name without ``root``'s
    prefix (``'stage3_block2'`` for a block of ``hcnet0_``, as :func:`hcnet.count` names it)."""
    name, prefix = block.name, root.prefix
    return name[len(prefix):] if prefix and name.startswith(prefix) else name
