"""The pretrained-weights store: the reader (:mod:`.fetch`: index, verified cached
downloads) and the writer (:mod:`.publish`). A leaf: it knows files and URLs, no model;
loading weights into a network is the zoo's step (:mod:`hcnet.model_zoo.builder`)."""
from .fetch import *  # noqa: F401,F403
from .fetch import __all__ as _fetch_all
from .publish import PublishError, publish_params, read_store_index

__all__ = list(_fetch_all) + ['PublishError', 'publish_params', 'read_store_index']
