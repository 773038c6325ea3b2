"""ImageNet weights for the base networks from PyTorch state dicts, without torch.

``hcnet convert FILE --source timm:mobilenetv3_large_100 --out store/`` reads timm's or
torchvision's weights (:mod:`.reader`: a ``.safetensors`` file, or a ``.pth`` / ``.bin``
through an unpickler that accepts only tensors and plain containers and never runs
code), maps them onto the hcnet network the source is (:mod:`.mapping`, :mod:`.sources`)
and writes store files that ``hcnet.get_model(name, pretrained=True)`` loads
(:mod:`.convert`). A consumer of the zoo, as ``train`` and ``deploy`` are; it imports no
torch.
"""
from .convert import ConvertError, Converted, convert_file, convert_params, entry_info
from .mapping import MapError, map_state_dict, source_order, target_params
from .reader import ReadError, RestrictedUnpickler, read_state_dict
from .sources import SOURCES, SourceError, get_source, source_names

__all__ = ['ConvertError', 'Converted', 'convert_file', 'convert_params', 'entry_info',
           'MapError', 'map_state_dict', 'source_order', 'target_params', 'ReadError',
           'RestrictedUnpickler', 'read_state_dict', 'SOURCES', 'SourceError', 'get_source',
           'source_names']
