"""FLOPs per image of an exported ONNX graph: what `diffsem bench decoder` prints and what the
model cards record (`flops_per_image`).

FLOPs are 2 x multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul nodes (the rest --
activations, norms, adds -- is small next to them and not counted), with shapes from ONNX shape
inference at batch 1, corrected by the shapes seen in one batch-1 run of the graph (exporters'
GroupNorm patterns defeat static inference); nodes inside a Loop body count trip-count times
when the count is a constant.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("diffsem.runtime.flops")


def _shape_table(graph, outer: dict | None = None, measured: dict | None = None) -> dict:
    """name -> list of ints (or None for unknown axes) for every tensor shape known in `graph`;
    `measured` shapes (from a run) override inferred ones."""
    table = dict(outer or {})
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        dims = vi.type.tensor_type.shape.dim
        table[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    for init in graph.initializer:
        table[init.name] = list(init.dims)
    table.update(measured or {})
    return table


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _known(*shapes) -> bool:
    return all(s is not None and None not in s for s in shapes)


_COUNTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _graph_flops(graph, outer: dict | None = None, skipped: list | None = None, measured: dict | None = None) -> int:
    from onnx import numpy_helper

    shapes = _shape_table(graph, outer, measured)
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(a.t)
    skipped = skipped if skipped is not None else []
    total = 0
    for node in graph.node:
        op = node.op_type
        ins = [shapes.get(n) for n in node.input]
        out = shapes.get(node.output[0]) if node.output else None
        attrs = {a.name: a for a in node.attribute}
        group = attrs["group"].i if "group" in attrs else 1
        if op == "Conv" and _known(ins[1], out):
            c_out, c_in_g, *kernel = ins[1]
            total += 2 * _prod(out) * c_in_g * _prod(kernel)          # out = [N, Cout, *spatial]
        elif op == "ConvTranspose" and _known(ins[0], ins[1]):
            c_in, c_out_g, *kernel = ins[1]
            total += 2 * _prod(ins[0]) * c_out_g * _prod(kernel)       # every input pixel scatters a kernel
        elif op == "Gemm" and _known(ins[0], ins[1]):
            trans_a = attrs["transA"].i if "transA" in attrs else 0
            m, k = ins[0][::-1] if trans_a else ins[0]
            total += 2 * m * k * _prod(ins[1]) // k
        elif op == "MatMul" and _known(ins[0], out):
            total += 2 * _prod(out) * ins[0][-1]
        elif op == "Loop":
            body = attrs["body"].g
            trip = constants.get(node.input[0]) if node.input and node.input[0] else None
            if trip is None:
                skipped.append(f"Loop {node.name or node.output[0]} (trip count not constant)")
                continue
            total += int(trip) * _graph_flops(body, shapes, skipped)
        elif op in _COUNTED:
            skipped.append(f"{op} {node.name or node.output[0]} (shape unknown)")
        elif op in ("If", "Scan"):
            skipped.append(f"{op} {node.name or node.output[0]} (subgraph not counted)")
    return total


def _measured_shapes(model) -> dict:
    """Shapes of the counted nodes' tensors from one batch-1 run of the graph (every such tensor
    exposed as an extra output). Exporters' GroupNorm (Reshape/InstanceNorm/Shape/Reshape) and
    similar patterns defeat static shape inference; a run cannot be fooled. {} if it fails."""
    import onnx
    import onnxruntime as ort

    graph = model.graph
    seen = {i.name for i in graph.initializer}
    wanted = []
    for node in graph.node:
        if node.op_type in _COUNTED:
            new = [n for n in dict.fromkeys(list(node.input[:2]) + list(node.output[:1])) if n and n not in seen]
            wanted += new
            seen.update(new)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    elem = {vi.name: vi.type.tensor_type.elem_type for vi in list(graph.value_info) + list(graph.input)}
    outputs = {o.name for o in graph.output}
    for name in (n for n in wanted if n not in outputs):
        elem_type = elem.get(name, onnx.TensorProto.FLOAT)
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, elem_type, None))
    feeds = {}
    initializers = {i.name for i in graph.initializer}
    for vi in graph.input:
        if vi.name in initializers:
            continue
        shape = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        feeds[vi.name] = np.full(shape, 0.1 if dtype.kind == "f" else 0, dtype=dtype)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        sess = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        values = sess.run(wanted, feeds)
    except Exception as exc:  # noqa: BLE001 - fall back to static shapes
        log.warning("shape probe run failed (%s); FLOPs from static shape inference only", exc)
        return {}
    return {name: list(v.shape) for name, v in zip(wanted, values)}


def count_flops(onnx_path) -> tuple[int, list[str]]:
    """(FLOPs per image, nodes that could not be counted) for an ONNX model, at batch 1."""
    import onnx

    model = onnx.load(str(onnx_path))
    initializers = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = 1  # the (dynamic) batch axis
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    measured = _measured_shapes(model)
    skipped: list[str] = []
    batch = 1
    first = next((vi for vi in model.graph.input if vi.name not in initializers), None)
    if first is not None and first.type.tensor_type.shape.dim:
        batch = first.type.tensor_type.shape.dim[0].dim_value or 1  # a static-batch model: per image
    return _graph_flops(model.graph, skipped=skipped, measured=measured) // batch, skipped


# --- peak and timing ---------------------------------------------------------------------------

