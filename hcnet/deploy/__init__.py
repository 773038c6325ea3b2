"""Deployment: the fast inference graph (:mod:`.graph`), ONNX export and checks
(:mod:`.onnx`), ONNX Runtime sessions (:mod:`.runtime`)."""
from .graph import *  # noqa: F401,F403
from .graph import __all__ as _graph_all

__all__ = list(_graph_all)
