"""Datasets: the registry and each dataset's reader (in memory: digits, synthetic; on disk: CIFAR,
TinyImageNet, image folders, the MNIST family), batches in memory or on the device, image files and
their decoded cache.

`register_dataset` adds one; `load_data(spec.data, seed)` is what a trial reads.
"""

from adsearch._lazy import lazy_exports

_OWNERS = {
    "register_dataset": "registry", "list_datasets": "registry", "load_data": "registry", "input_shape": "registry",
    "DataSettings": "settings", "DATA_ENV": "settings",
}
__all__ = list(_OWNERS)
__getattr__, __dir__ = lazy_exports(__name__, _OWNERS)
