"""The channel graph of a traced network: its coupled channel groups, found with torch.fx.

`channel_groups(model)` is the one entry: a network of our registry lists its own groups; any
other network is traced with `torch.fx` and its shapes propagated on the meta device (no data,
no compute, whatever device the model is on; `adsearch.prune.tracing`). Each tensor's channel
dim (dim 1) is followed through the graph as a list of segments, each a run of channels of one
group:

- a conv (groups=1) or Linear reads its input's segments (a consumer of each) and starts a new
  group for its output; a depthwise conv and a BatchNorm keep their input's segments (a producer
  of each: their weights are cut with the channels);
- an addition or multiplication of two tensors joins their groups (residual coupling, squeeze-
  and-excitation gates): one width and one kept set;
- a concatenation along channels puts its inputs' segments side by side (each group keeps its
  own width; members see it at an offset);
- a flatten spreads each channel over the spatial positions (`Slice.repeat`);
- activations, pooling, dropout and gates pass the segments on; an activation (module, or a
  functional ReLU right after a module) is where the density of the groups it carries is counted.

A group is listed only if it may be pruned: not the network's input or output (the classifier's
width is never cut), not read by a grouped conv, and counted at one activation at least (the
linear bottlenecks of MobileNetV2 pass no nonlinearity and keep their width). A group through a
depthwise conv keeps 2 channels at least (`min_width`): at 1 it could not be told from a dense
conv when traced again. Anything else ends in `UnsupportedModel`, naming the node, its op and
its module.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from adsearch.prune.compress import ChannelGroup, Slice
from adsearch.prune.tracing import ADVICE, UnsupportedModel, call_numbers, node_shape, trace


def channel_groups(model: nn.Module) -> list[ChannelGroup]:
    """The prunable channel groups of `model`: its own `channel_groups()`, else traced."""
    own = getattr(model, "channel_groups", None)
    if callable(own):
        return own()
    return traced_channel_groups(model)


# --- what each op does to channels -------------------------------------------------------------

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.GELU, nn.Mish, nn.LeakyReLU, nn.ELU, nn.SELU)
"""Activation modules: output > 0 exactly where input > 0, so density is well defined there."""

_PASS_MODULES = (
    nn.Identity, nn.Dropout, nn.Dropout2d, nn.Sigmoid, nn.Hardsigmoid, nn.Tanh,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample,
)
_RELU_FUNCTIONS = {F.relu, torch.relu, torch.relu_, F.relu6, F.relu_}
_PASS_FUNCTIONS = {
    F.silu, F.hardswish, F.gelu, F.leaky_relu, F.elu, F.mish, torch.sigmoid, F.hardsigmoid, torch.tanh,
    F.dropout, F.dropout2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.avg_pool2d, F.max_pool2d,
    F.interpolate,
}
_RELU_METHODS = {"relu", "relu_"}
_PASS_METHODS = {"sigmoid", "sigmoid_", "tanh", "contiguous", "clone", "detach"}
_BINARY = {operator.add, operator.iadd, operator.mul, operator.imul, operator.sub, operator.isub,
           operator.truediv, torch.add, torch.mul, torch.sub, torch.div}
_BINARY_METHODS = {"add", "add_", "mul", "mul_", "sub", "sub_", "div", "div_"}
_REDUCE = {torch.mean, torch.sum, torch.amax}
_REDUCE_METHODS = {"mean", "sum", "amax"}
_FLATTEN = {torch.flatten}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}


def _wrapped_functions() -> set:
    try:
        from torchvision.ops.stochastic_depth import stochastic_depth

        return {stochastic_depth}
    except ImportError:  # torchvision is a dependency; this only guards odd installs
        return set()


# --- following the channels node by node -------------------------------------------------------


@dataclass(frozen=True)
class _Seg:
    gid: int
    width: int
    repeat: int = 1


@dataclass
class _Member:
    gid: int
    role: str  # producer | consumer | monitor
    module: str
    offset: int
    width: int
    repeat: int
    call: int | None
    creator: bool = False


@dataclass
class _Graph:
    """Union-find over channel groups, and what each module does with them."""

    parent: list[int] = field(default_factory=list)
    fixed: set[int] = field(default_factory=set)
    members: list[_Member] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)  # module -> the group its output starts
    read: dict[str, tuple] = field(default_factory=dict)  # module -> the layout it reads
    depthwise: set[str] = field(default_factory=set)

    def reads(self, role: str, module: str, layout, node: fx.Node) -> None:
        """Record that `module` reads `layout`; a module called again reads the same channels."""
        if module not in self.read:
            self.read[module] = layout
            self.add(role, module, layout)
            return
        first = self.read[module]
        if [s.width for s in first] != [s.width for s in layout]:
            raise _unsupported(node, "is called twice on differently laid out channels")
        for a, b in zip(first, layout):
            self.join(a.gid, b.gid)

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def join(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def fix(self, layout) -> None:
        for seg in layout or ():
            self.fixed.add(seg.gid)

    def add(self, role: str, module: str, layout, call: int | None = None, creator: bool = False) -> None:
        at = 0
        for seg in layout:
            self.members.append(_Member(seg.gid, role, module, at, seg.width, seg.repeat, call, creator))
            at += seg.width * seg.repeat


def traced_channel_groups(model: nn.Module) -> list[ChannelGroup]:
    """Trace `model` and list its prunable channel groups (see the module docstring).

    Raises:
        UnsupportedModel: the model cannot be traced, or holds an op the analysis does not know.
    """
    gm = trace(model)
    calls = call_numbers(gm)
    graph = _Graph()
    layouts: dict[fx.Node, tuple | None] = {}
    modules = dict(model.named_modules())
    for node in gm.graph.nodes:
        layouts[node] = _step(node, layouts, graph, modules, calls)
    return _groups(graph)


def _unsupported(node: fx.Node, why: str) -> UnsupportedModel:
    """An error naming the module and the op at `node`, and what to do instead."""
    if node.op == "call_module":
        where = node.target
        op = type(node.graph.owning_module.get_submodule(node.target)).__name__
    else:
        stack = node.meta.get("nn_module_stack") or {}
        where = next(reversed(stack.values()))[0] if stack else "(top level)"
        op = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return UnsupportedModel(f"module {where!r}: op {op} (node {node.name!r}) {why}; {ADVICE}")


def _step(node: fx.Node, layouts: dict, graph: _Graph, modules: dict, calls: dict):
    """The channel layout of `node`'s output (a tuple of segments), recording what the node does."""
    if node.op == "placeholder":
        gid = graph.new()
        graph.fixed.add(gid)
        return (_Seg(gid, node_shape(node)[1]),)
    if node.op == "output":  # the logits (and any other output) keep their width
        for n in _nodes_in(node.args):
            graph.fix(layouts.get(n))
        return None
    if node.op == "get_attr":
        return None
    inputs = [n for n in node.all_input_nodes if node_shape(n) is not None and len(node_shape(n)) >= 2]
    if node_shape(node) is None or not inputs:
        return None  # sizes, shapes and other non-tensor values; constants
    if node.op == "call_module":
        return _module_step(node, modules[node.target], layouts, graph, calls)
    return _function_step(node, inputs, layouts, graph, modules, calls)


def _nodes_in(arg) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg(arg, found.append)
    return found


def _module_step(node, module, layouts, graph: _Graph, calls):
    x = layouts.get(node.args[0]) if node.args else None
    if x is None:
        raise _unsupported(node, "reads a tensor whose channels are not followed")
    name, call = node.target, calls.get(node)
    if isinstance(module, nn.Conv2d):
        if module.groups == 1:
            graph.reads("consumer", name, x, node)
            return (_Seg(_created(graph, name, node), module.out_channels),)
        if module.groups == module.in_channels == module.out_channels:  # depthwise: in and out coupled
            _no_repeat(node, x)
            graph.reads("producer", name, x, node)
            graph.depthwise.add(name)
            return x
        graph.fix(x)  # a grouped conv keeps its widths: its groups must divide them
        gid = _created(graph, name, node)
        graph.fixed.add(gid)
        return (_Seg(gid, module.out_channels),)
    if isinstance(module, nn.Linear):
        if len(node_shape(node)) != 2:
            raise _unsupported(node, "is a Linear on a tensor of more than 2 dims")
        graph.reads("consumer", name, x, node)
        return (_Seg(_created(graph, name, node), module.out_features),)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        _no_repeat(node, x)
        graph.reads("producer", name, x, node)
        return x
    if isinstance(module, _ACTIVATIONS):
        graph.add("monitor", name, x, call=call)
        return x
    if isinstance(module, _PASS_MODULES):
        return x
    if isinstance(module, nn.Flatten):
        return _flatten(node, node.args[0], x)
    raise _unsupported(node, "is not supported by the channel analysis")


def _created(graph: _Graph, name: str, node: fx.Node) -> int:
    """The group a conv or Linear starts; a module called again starts the same one."""
    if name in graph.created:
        return graph.created[name]
    gid = graph.new()
    graph.created[name] = gid
    graph.members.append(_Member(gid, "producer", name, 0, node_shape(node)[1], 1, None, creator=True))
    return gid


def _no_repeat(node, layout) -> None:
    if any(seg.repeat != 1 for seg in layout):
        raise _unsupported(node, "normalises or convolves a flattened feature")


def _function_step(node, inputs, layouts, graph: _Graph, modules, calls):
    fn = node.target
    method = fn if node.op == "call_method" else None
    if fn in _BINARY or method in _BINARY_METHODS:
        return _binary(node, inputs, layouts, graph)
    if fn is torch.cat:
        return _cat(node, layouts, graph)
    x = layouts.get(inputs[0])
    if x is None:
        raise _unsupported(node, "reads a tensor whose channels are not followed")
    if fn in _RELU_FUNCTIONS or method in _RELU_METHODS:
        src = inputs[0]
        if src.op == "call_module" and not isinstance(modules[src.target], _ACTIVATIONS):
            graph.add("monitor", src.target, x, call=calls.get(src))  # relu(y) > t exactly where y > t
        return x
    if fn in _PASS_FUNCTIONS or fn in _wrapped_functions() or method in _PASS_METHODS:
        return x
    if fn in _FLATTEN or method in _FLATTEN_METHODS:
        return _flatten(node, inputs[0], x)
    if fn in _REDUCE or method in _REDUCE_METHODS:
        ndim = len(node_shape(inputs[0]))
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = (dims,) if isinstance(dims, int) else dims
        if dims and all(isinstance(d, int) and d % ndim not in (0, 1) for d in dims):
            return x  # reduced over space only
        raise _unsupported(node, "reduces over the batch or the channels")
    raise _unsupported(node, "is not supported by the channel analysis")


def _binary(node, inputs, layouts, graph: _Graph):
    """Elementwise op: tensors with a real channel dim are joined; broadcast ones pass."""
    ndim, width = len(node_shape(node)), node_shape(node)[1]
    sizes = {n: _channel_size(n, ndim) for n in inputs}
    wide = [n for n in inputs if sizes[n] == width]
    for n in inputs:
        if sizes[n] not in (1, width):
            raise _unsupported(node, "broadcasts channels in an unsupported way")
    if not wide:  # all operands broadcast along channels: output follows the first
        return layouts.get(inputs[0])
    if any(layouts.get(n) is None for n in wide):
        raise _unsupported(node, "combines channels with a tensor whose channels are not followed "
                                 "(a parameter or a constant)")
    first = layouts[wide[0]]
    for n in wide[1:]:
        other = layouts[n]
        if [(s.width, s.repeat) for s in other] != [(s.width, s.repeat) for s in first]:
            raise _unsupported(node, "combines tensors whose channels are laid out differently")
        for a, b in zip(first, other):
            graph.join(a.gid, b.gid)
    return first


def _channel_size(node: fx.Node, ndim: int) -> int:
    """The size `node` has along the output's channel dim once broadcast (1: broadcast along it)."""
    shape = node_shape(node)
    at = 1 - (ndim - len(shape))  # broadcasting aligns shapes on the right
    return shape[at] if at >= 0 else 1


def _cat(node, layouts, graph: _Graph):
    tensors = node.args[0] if node.args else node.kwargs["tensors"]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    ndim = len(node_shape(node))
    parts = [layouts.get(n) for n in tensors]
    if any(p is None for p in parts):
        raise _unsupported(node, "concatenates a tensor whose channels are not followed")
    if dim % ndim == 1:
        return tuple(seg for p in parts for seg in p)
    for p in parts[1:]:  # along another dim: the channels are the same ones
        if [s.width for s in p] != [s.width for s in parts[0]]:
            raise _unsupported(node, "concatenates along a non-channel dim with different channel layouts")
        for a, b in zip(parts[0], p):
            graph.join(a.gid, b.gid)
    return parts[0]


def _flatten(node, src, layout):
    shape_in, shape_out = node_shape(src), node_shape(node)
    if len(shape_out) >= 2 and shape_out[:2] == shape_in[:2]:
        return layout  # e.g. a view of an (N, C, 1, 1) map as (N, C)
    if len(shape_out) == 2 and len(shape_in) >= 2 and shape_out[0] == shape_in[0]:
        spatial = shape_out[1] // shape_in[1]
        if spatial * shape_in[1] == shape_out[1]:
            return tuple(_Seg(s.gid, s.width, s.repeat * spatial) for s in layout)
    raise _unsupported(node, f"reshapes {tuple(shape_in)} to {tuple(shape_out)}, mixing channels")


# --- from members to groups ----------------------------------------------------------------------


def _groups(graph: _Graph) -> list[ChannelGroup]:
    by_root: dict[int, list[_Member]] = {}
    for m in graph.members:
        by_root.setdefault(graph.find(m.gid), []).append(m)
    fixed = {graph.find(g) for g in graph.fixed}
    groups = []
    for root, members in by_root.items():
        if root in fixed or not any(m.role == "monitor" for m in members):
            continue
        creators = [m for m in members if m.creator]
        if not creators:
            continue  # channels no conv or Linear makes: not ours to cut
        producers = _names(creators + [m for m in members if m.role == "producer" and not m.creator])
        consumers = _names([m for m in members if m.role == "consumer"])
        monitors = _names([m for m in members if m.role == "monitor"])
        # cut to one channel, a depthwise conv is a dense 1x1-channel conv: the graph would change
        min_width = 2 if graph.depthwise & set(producers) else 1
        groups.append(ChannelGroup(name=creators[0].module, producers=producers, consumers=consumers,
                                   monitors=monitors, slices=_slices(members), min_width=min_width))
    order = {m.module: i for i, m in enumerate(graph.members) if m.creator}
    return sorted(groups, key=lambda g: order[g.name])


def _names(members: list[_Member]) -> list[str]:
    return list(dict.fromkeys(m.module for m in members))


def _slices(members: list[_Member]) -> dict[str, Slice]:
    slices: dict[str, Slice] = {}
    for m in members:
        site = Slice(m.offset, m.width, m.repeat, m.call)
        old = slices.get(m.module)
        if old is not None and (old.offset, old.width, old.repeat) != (site.offset, site.width, site.repeat):
            raise UnsupportedModel(f"module {m.module!r} holds the channels of one group at two places "
                                   f"({old} and {site}); {ADVICE}")
        if old is None or old.call is None:
            slices[m.module] = site
    return slices
