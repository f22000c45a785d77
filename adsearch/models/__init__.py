"""The model registry (`register_model`, `create_model`, `list_models`) and its families: CIFAR-style
VGG and ResNet, any traceable torchvision CNN by name; the checks a spec runs; compressed save and load.
"""

from adsearch._lazy import lazy_exports

_OWNERS = {
    "register_model": "registry", "create_model": "registry", "list_models": "registry", "check_arch": "registry",
    "VGG": "vgg", "ResNet": "resnet", "input_problem": "checks", "compression_problem": "checks",
    "save_compressed": "saving", "load_compressed": "saving",
}
__all__ = list(_OWNERS)
__getattr__, __dir__ = lazy_exports(__name__, _OWNERS)
