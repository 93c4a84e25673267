"""Export a Network to ONNX, built with the ``onnx`` package (``pip install "pynn[onnx]"``).

The graph is one ``Gemm`` per layer (``transB=1``, so the weights are stored as pynn holds
them, ``(n_out, n_in)``) followed by the layer's activation: ``Sigmoid``, ``Tanh``, ``Relu``,
``LeakyRelu`` (alpha 0.01, as pynn; for float64 networks ``Max(z, 0.01 z)``, because
LeakyRelu's alpha is a float32 attribute), ``Softmax`` (axis 1), or nothing for ``linear``.
The newer activations are built from elementary operators that onnxruntime runs in float32 and
float64 (its ``Elu``, ``Softplus`` and ``Erf`` kernels are float32 only):

* ``elu``: ``Elu`` (alpha 1) in float32; ``Relu(z) + (Exp(Min(z, 0)) - 1)`` in float64;
* ``softplus``: ``Where(z > 20, z, Relu(z) + Log(1 + Exp(-|z|)))``, PyTorch's threshold as pynn;
* ``gelu``: ``0.5 z (1 + Erf(z / √2))``, exact as pynn's; a float64 network computes ``Erf`` in
  float32 (``Cast`` around it), so its output agrees to float32 precision, not float64's;
* ``exp``: ``Exp``.

Layout: the ONNX model takes **row-major** input ``X`` of shape ``(n_examples, n_features)``
and gives ``Y`` of shape ``(n_examples, n_outputs)``, as ONNX runtimes and converters expect;
that is the transpose of pynn's ``(features, examples)`` convention, so
``session.run(None, {"X": data})[0] == net.predict(data.T).T``. The batch dimension is dynamic.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .network import Network

DEFAULT_OPSET = 17  # every op used exists unchanged since opset 13; 17 is supported by onnxruntime >= 1.11
MIN_OPSET = 13  # Softmax's axis semantics (normalise along one axis) date from opset 13


def to_onnx(net: Network, path: str | os.PathLike[str] | None = None, *, opset: int = DEFAULT_OPSET,
            input_name: str = "X", output_name: str = "Y") -> Any:
    """Build the ONNX model of ``net`` and write it to ``path``; return the ``onnx.ModelProto``.

    See :meth:`pynn.Network.to_onnx`.
    """
    from ._validate import check_int
    from .backends.reference import ELU_ALPHA, LEAKY_SLOPE, SOFTPLUS_THRESHOLD
    from .io import atomic_write, check_metadata

    opset = check_int(opset, "opset", minimum=MIN_OPSET)
    for value, name in ((input_name, "input_name"), (output_name, "output_name")):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name} must be a non-empty str, got {value!r}")
    if input_name == output_name:
        raise ValueError(f"input_name and output_name must differ, got {input_name!r} for both")
    if path is not None:
        path = os.fspath(path)
    metadata = check_metadata(net.metadata, "net.metadata")
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError('Network.to_onnx needs the onnx package: pip install "pynn[onnx]"') from None
    from . import __version__

    elem = TensorProto.FLOAT if net.dtype == np.float32 else TensorProto.DOUBLE
    n = len(net.layers)
    nodes, inits = [], []

    def const(name: str, value: float) -> str:
        """A scalar initializer in the network's dtype, added once."""
        if not any(t.name == name for t in inits):
            inits.append(numpy_helper.from_array(np.array(value, net.dtype), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out
    prev = input_name
    if net.scaler is not None:  # the input standardisation: (X - mean) * (1 / scale), row-major
        inits.append(numpy_helper.from_array(net.scaler.mean.astype(net.dtype), "scaler_mean"))
        inits.append(numpy_helper.from_array(net.scaler._inv.astype(net.dtype), "scaler_inv_scale"))
        nodes.append(helper.make_node("Sub", [prev, "scaler_mean"], ["Xc"], name="scaler_center"))
        nodes.append(helper.make_node("Mul", ["Xc", "scaler_inv_scale"], ["Xs"], name="scaler_scale"))
        prev = "Xs"
    for i, layer in enumerate(net.layers):
        stem = layer._stem
        last = i == n - 1
        z = output_name if last and stem == "linear" else f"Z{i}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(layer.W), f"W{i}"))
        inits.append(numpy_helper.from_array(np.ascontiguousarray(layer.b.reshape(-1)), f"b{i}"))
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"b{i}"], [z], name=f"dense{i}", transB=1))
        a = output_name if last else f"A{i}"
        if stem == "sigmoid":
            nodes.append(helper.make_node("Sigmoid", [z], [a], name=f"sigmoid{i}"))
        elif stem == "tanh":
            nodes.append(helper.make_node("Tanh", [z], [a], name=f"tanh{i}"))
        elif stem == "relu":
            nodes.append(helper.make_node("Relu", [z], [a], name=f"relu{i}"))
        elif stem == "leaky_relu" and elem == TensorProto.FLOAT:
            nodes.append(helper.make_node("LeakyRelu", [z], [a], name=f"leaky_relu{i}", alpha=LEAKY_SLOPE))
        elif stem == "leaky_relu":  # LeakyRelu's alpha is a float32 attribute: max(z, 0.01 z) keeps float64's 0.01
            if not any(t.name == "leaky_slope" for t in inits):
                inits.append(numpy_helper.from_array(np.array(LEAKY_SLOPE, np.float64), "leaky_slope"))
            nodes.append(helper.make_node("Mul", [z, "leaky_slope"], [f"S{i}"], name=f"leaky_slope{i}"))
            nodes.append(helper.make_node("Max", [z, f"S{i}"], [a], name=f"leaky_relu{i}"))
        elif stem == "softmax":
            nodes.append(helper.make_node("Softmax", [z], [a], name=f"softmax{i}", axis=1))
        elif stem == "exp":
            nodes.append(helper.make_node("Exp", [z], [a], name=f"exp{i}"))
        elif stem == "elu" and elem == TensorProto.FLOAT:
            nodes.append(helper.make_node("Elu", [z], [a], name=f"elu{i}", alpha=ELU_ALPHA))
        elif stem == "elu":  # relu(z) + alpha (exp(min(z, 0)) - 1)
            neg = node("Min", [z, const("zero", 0.0)], f"elu{i}_neg")
            em1 = node("Sub", [node("Exp", [neg], f"elu{i}_exp"), const("one", 1.0)], f"elu{i}_em1")
            if ELU_ALPHA != 1.0:  # pragma: no cover - pynn's alpha is 1
                em1 = node("Mul", [em1, const("elu_alpha", ELU_ALPHA)], f"elu{i}_scaled")
            nodes.append(helper.make_node("Add", [node("Relu", [z], f"elu{i}_pos"), em1], [a], name=f"elu{i}"))
        elif stem == "softplus":  # relu(z) + log(1 + exp(-|z|)), z itself above the threshold
            tail = node("Exp", [node("Neg", [node("Abs", [z], f"softplus{i}_abs")], f"softplus{i}_nabs")],
                        f"softplus{i}_exp")
            log = node("Log", [node("Add", [tail, const("one", 1.0)], f"softplus{i}_1p")], f"softplus{i}_log")
            smooth = node("Add", [node("Relu", [z], f"softplus{i}_pos"), log], f"softplus{i}_smooth")
            big = node("Greater", [z, const("softplus_threshold", SOFTPLUS_THRESHOLD)], f"softplus{i}_big")
            nodes.append(helper.make_node("Where", [big, z, smooth], [a], name=f"softplus{i}"))
        elif stem == "gelu":  # z Φ(z) = 0.5 z (1 + erf(z / √2))
            u = node("Mul", [z, const("inv_sqrt2", math.sqrt(0.5))], f"gelu{i}_u")
            if elem == TensorProto.FLOAT:
                erf = node("Erf", [u], f"gelu{i}_erf")
            else:  # onnxruntime has no float64 Erf
                u32 = node("Cast", [u], f"gelu{i}_u32", to=TensorProto.FLOAT)
                erf = node("Cast", [node("Erf", [u32], f"gelu{i}_erf32")], f"gelu{i}_erf", to=TensorProto.DOUBLE)
            cdf = node("Mul", [node("Add", [erf, const("one", 1.0)], f"gelu{i}_1p"), const("half", 0.5)],
                       f"gelu{i}_cdf")
            nodes.append(helper.make_node("Mul", [z, cdf], [a], name=f"gelu{i}"))
        elif stem == "linear":
            a = z
        else:  # pragma: no cover - a new activation needs a row here
            raise NotImplementedError(f"no ONNX export for activation {layer.activation!r}")
        prev = a

    graph = helper.make_graph(
        nodes, "pynn_mlp",
        inputs=[helper.make_tensor_value_info(input_name, elem, ["N", net.sizes[0]])],
        outputs=[helper.make_tensor_value_info(output_name, elem, ["N", net.sizes[-1]])],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="pynn", producer_version=__version__,
        doc_string=f"pynn {'-'.join(map(str, net.sizes))} MLP ({', '.join(l.activation for l in net.layers)}); "
                   f"input {input_name} is (n_examples, n_features), row-major; output {output_name} is "
                   "(n_examples, n_outputs).",
    )
    props = {"pynn_sizes": json.dumps(net.sizes), "pynn_activations": json.dumps([l.activation for l in net.layers])}
    if metadata:
        props["pynn_metadata"] = json.dumps(metadata)
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        data = model.SerializeToString()
        atomic_write(path, lambda f: f.write(data))
    return model
