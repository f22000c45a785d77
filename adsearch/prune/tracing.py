"""Tracing a network for the channel graph: torch.fx's graph of its forward, each node's output shape
propagated on the meta device (no data, no compute), and the error for a network it cannot follow."""

from __future__ import annotations

import torch
from torch import fx, nn

from adsearch.errors import AdsearchError

TRACE_SIZE = 224
"""Input side used for tracing; shapes are propagated on the meta device, so it costs nothing."""


class UnsupportedModel(AdsearchError):
    """A network whose channels cannot be followed: untraceable, or an op the analysis lacks."""


ADVICE = ("set `pruning.method: none` to train it uncompressed, or use a supported arch "
          "(vgg*, resnet18/34/50, or torchvision:<name> for CNNs made of convs, BatchNorm, "
          "activations, pooling, additions and concatenations)")
"""What every `UnsupportedModel` message ends with: how to go on."""


def trace(model: nn.Module) -> fx.GraphModule:
    """`model` traced by torch.fx in eval mode, each node's output shape propagated on the meta device
    (read it with `node_shape`).

    Raises:
        UnsupportedModel: the model cannot be traced, takes more than one input, or fails on the input.
    """
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    in_channels = first_conv.in_channels if first_conv is not None else 3
    was_training = model.training
    model.eval()  # trace the inference graph: no drop paths, no auxiliary heads
    try:
        tracer = fx.Tracer()
        try:
            gm = fx.GraphModule(model, tracer.trace(model))
        except Exception as exc:  # fx raises TraceError, TypeError, AttributeError, ...
            stack = list(tracer.module_stack.values())  # left as it was where tracing failed
            where = f"module {stack[-1][0]!r} ({stack[-1][1].__name__})" if stack and stack[-1][0] else \
                f"{type(model).__name__}.forward"
            raise UnsupportedModel(
                f"{where} cannot be traced by torch.fx ({type(exc).__name__}: {exc}); {ADVICE}"
            ) from None
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise UnsupportedModel(f"{type(model).__name__}.forward takes {len(placeholders)} inputs, "
                                   f"not one image batch; {ADVICE}")
        example = torch.empty(2, in_channels, TRACE_SIZE, TRACE_SIZE, device="meta")
        state = {f"gm.{k}": torch.empty_like(v, device="meta")
                 for k, v in [*gm.named_parameters(), *gm.named_buffers()]}
        try:
            torch.func.functional_call(_ShapeRun(gm), state, (example,))
        except Exception as exc:
            raise UnsupportedModel(
                f"{type(model).__name__} does not run on a {tuple(example.shape[1:])} input while traced "
                f"({type(exc).__name__}: {exc}); {ADVICE}"
            ) from None
    finally:
        model.train(was_training)
    return gm


class _ShapeRun(nn.Module):
    """Runs a traced graph node by node, writing each tensor result's shape into `node.meta`."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__()
        self.gm = gm

    def forward(self, x: torch.Tensor):
        return _ShapeInterpreter(self.gm).run(x)


class _ShapeInterpreter(fx.Interpreter):
    def run_node(self, node: fx.Node):
        out = super().run_node(node)
        node.meta["adsearch_shape"] = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        return out


def call_numbers(gm: fx.GraphModule) -> dict[fx.Node, int | None]:
    """For a module called more than once per forward, each call node's number (0-based)."""
    seen: dict[str, list[fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            seen.setdefault(node.target, []).append(node)
    numbers: dict[fx.Node, int | None] = {}
    for nodes in seen.values():
        for i, node in enumerate(nodes):
            numbers[node] = i if len(nodes) > 1 else None
    return numbers


def node_shape(node) -> tuple | None:
    """The shape of the tensor `node` computes (None: not a tensor)."""
    return node.meta.get("adsearch_shape") if isinstance(node, fx.Node) else None
