"""Will a SavedModel that TF Serving loads also answer? Static checks on the MetaGraph.

TF Serving marks a version AVAILABLE once the restore op and the init op
have run; a variable that the serving functions read but the restore step
never assigns only fails at request time ("Could not find variable ...", the
Keras 3 ``tf.Module`` export of keras-team/keras#20095). This module works
out, from the GraphDef and its function library alone:

- which variables the public signatures capture (``VarHandleOp`` /
  ``VariableV2`` nodes their output tensors depend on);
- which variables the saver's restore op assigns, and from which checkpoint
  key (``RestoreV2``'s ``tensor_names`` constant), following the restore
  call into its function (TF2) or the ``save/restore_all`` group (TF1);
- that those keys are in ``variables/variables.index``;
- that signature tensors, asset files and the init/main op exist.

When the graph does not have a shape this code understands, it says nothing
rather than guess: every problem it reports names a concrete missing thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfsops.savedmodel._fs import listing, show

VARIABLE_OPS = frozenset({"VarHandleOp", "VariableV2", "Variable"})
CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})
PASS_THROUGH = frozenset({"Identity", "IdentityN"})
ASSIGN_OPS = frozenset({"AssignVariableOp", "Assign"})
INIT_OP_SIGNATURE = "__saved_model_init_op"
MAIN_OP_COLLECTIONS = ("saved_model_main_op", "legacy_init_op")
KERAS_HINT = (
    "a Keras 3 model wrapped in tf.Module and saved with tf.saved_model.save does not "
    "save every variable (keras-team/keras#20095): export it with model.export(path) "
    "or keras.export.ExportArchive"
)


@dataclass(frozen=True)
class GraphProblems:
    """What one MetaGraph lacks. ``unrestored`` and ``missing_keys`` name variables."""

    unrestored: tuple[str, ...] = ()  # captured by a signature, never assigned by restore
    missing_keys: tuple[str, ...] = ()  # "variable (key)" whose key the index lacks
    other: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.unrestored or self.missing_keys or self.other)

    def messages(self, where: str) -> list[str]:
        out: list[str] = []
        if self.unrestored:
            out.append(
                f"{where}: {len(self.unrestored)} variable(s) the signatures read are never "
                f"restored from variables/ (the server loads it, then every request fails): "
                f"{listing(list(self.unrestored), 8)}"
            )
        if self.missing_keys:
            out.append(
                f"{where}: variables/variables.index lacks {len(self.missing_keys)} "
                f"checkpoint key(s) the restore step needs: {listing(list(self.missing_keys), 8)}"
            )
        out.extend(f"{where}: {p}" for p in self.other)
        return out


def _split(ref: str) -> tuple[str, str]:
    """``node:out:idx`` / ``node:idx`` / ``node`` -> (node, output spec)."""
    name, _, rest = ref.partition(":")
    return name, rest


class _Body:
    """Nodes of the main graph or of one function body, by name."""

    def __init__(self, nodes: Iterable[Any], args: Iterable[str] = ()) -> None:
        self.nodes: dict[str, Any] = {n.name: n for n in nodes}
        self.args = frozenset(args)

    def data_inputs(self, node: Any) -> list[str]:
        return [i for i in node.input if not i.startswith("^")]

    def source(self, ref: str) -> tuple[Any | None, str]:
        """The node (None for a function argument) behind ``ref``, skipping Identity ops."""
        seen = 0
        while True:
            name, out = _split(ref)
            node = self.nodes.get(name)
            if node is None or node.op not in PASS_THROUGH or seen > 64:
                return node, (name if node is None else out)
            inputs = self.data_inputs(node)
            if not inputs:
                return node, out
            index = 0
            if node.op == "IdentityN" and out:
                tail = out.rsplit(":", 1)[-1]
                index = int(tail) if tail.isdigit() and int(tail) < len(inputs) else 0
            ref = inputs[index]
            seen += 1


def _var_name(node: Any) -> str:
    shared = (
        node.attr["shared_name"].s.decode("utf-8", "replace") if "shared_name" in node.attr else ""
    )
    return shared or node.name


def _walk(graph: _Body, starts: Iterable[str], stop: frozenset[str], control: bool) -> list[Any]:
    """The nodes with an op in ``stop`` reached backwards from ``starts`` (not walked past);
    through data inputs, and control inputs too when ``control``."""
    found: list[Any] = []
    stack = [_split(s.lstrip("^"))[0] for s in starts]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = graph.nodes.get(name)
        if node is None:
            continue
        if node.op in stop:
            found.append(node)
            continue
        inputs = node.input if control else graph.data_inputs(node)
        stack.extend(_split(i.lstrip("^"))[0] for i in inputs)
    return found


def _captured(graph: _Body, tensors: Iterable[str]) -> dict[str, str]:
    """Variable node name -> variable name, for every variable ``tensors`` depend on."""
    return {n.name: _var_name(n) for n in _walk(graph, tensors, VARIABLE_OPS, control=False)}


def _const_strings(node: Any) -> list[str] | None:
    if node is None or node.op != "Const" or "value" not in node.attr:
        return None
    return [s.decode("utf-8", "replace") for s in node.attr["value"].tensor.string_val]


def _restore_key(body: _Body, value_ref: str) -> str | None:
    """The checkpoint key behind an assigned value (a ``RestoreV2`` output), if any."""
    node, out = body.source(value_ref)
    if node is None or node.op not in {"RestoreV2", "Restore", "RestoreSlice"}:
        return None
    tail = out.rsplit(":", 1)[-1] if out else "0"
    index = int(tail) if tail.isdigit() else 0
    inputs = body.data_inputs(node)
    if len(inputs) < 2:
        return None
    names_node, _ = body.source(inputs[1])
    names = _const_strings(names_node)
    if not names or index >= len(names):
        return None
    return names[index]


def _assignments(body: _Body, nodes: Iterable[Any]) -> list[tuple[str, str | None]]:
    """(variable ref, checkpoint key) for each assign op in ``nodes``."""
    out: list[tuple[str, str | None]] = []
    for node in nodes:
        if node.op in ASSIGN_OPS:
            inputs = body.data_inputs(node)
            if len(inputs) >= 2:
                out.append((inputs[0], _restore_key(body, inputs[1])))
    return out


def _restored(
    graph: _Body, functions: Mapping[str, Any], restore_op: str
) -> dict[str, str | None] | None:
    """Variable node name -> checkpoint key for what the restore op assigns; None if unknown."""
    node = graph.nodes.get(_split(restore_op)[0])
    if node is None:
        return None
    restored: dict[str, str | None] = {}
    if node.op in CALL_OPS:  # TF2: restore is a function taking every variable handle
        fdef = functions.get(node.attr["f"].func.name)
        if fdef is None:
            return None
        args = [a.name for a in fdef.signature.input_arg]
        body = _Body(fdef.node_def, args)
        call_inputs = graph.data_inputs(node)
        by_arg = dict(zip(args, call_inputs, strict=False))
        for var_ref, key in _assignments(body, fdef.node_def):
            target, _ = body.source(var_ref)
            if target is not None:
                continue
            outer = by_arg.get(_split(var_ref)[0])
            if outer is None:
                continue
            var_node, _ = graph.source(outer)
            if var_node is not None and var_node.op in VARIABLE_OPS:
                restored[var_node.name] = key
        return restored
    # TF1: a NoOp grouping assign ops through control inputs.
    assigns = _walk(graph, [node.name], ASSIGN_OPS, control=True)
    for var_ref, key in _assignments(graph, assigns):
        var_node, _ = graph.source(var_ref)
        if var_node is not None and var_node.op in VARIABLE_OPS:
            restored[var_node.name] = key
    return restored


def check_meta_graph(
    meta_graph: Any, version_dir: Path, index_keys: frozenset[str] | None
) -> GraphProblems:
    """Static checks of one MetaGraph proto; ``index_keys`` None when there is no index."""
    graph = _Body(meta_graph.graph_def.node)
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    other: list[str] = []

    tensors: list[str] = []
    for key in sorted(meta_graph.signature_def):
        sig = meta_graph.signature_def[key]
        for side, infos in (("input", sig.inputs), ("output", sig.outputs)):
            for alias in sorted(infos):
                info = infos[alias]
                if info.WhichOneof("encoding") != "name":
                    continue
                name = _split(info.name)[0]
                if name not in graph.nodes:
                    other.append(
                        f"signature {key!r} {side} {alias!r} names tensor {info.name!r}, "
                        "which is not in the graph"
                    )
                elif side == "output" and key != INIT_OP_SIGNATURE:
                    tensors.append(info.name)

    for asset in meta_graph.asset_file_def:
        path = version_dir / "assets" / asset.filename
        if not path.is_file():
            other.append(f"asset file {show(path)} (used by the graph) is missing")

    for collection in MAIN_OP_COLLECTIONS:
        if collection in meta_graph.collection_def:
            for op in meta_graph.collection_def[collection].node_list.value:
                if _split(op)[0] not in graph.nodes:
                    other.append(f"the {collection} {op!r} is not in the graph")

    captured = _captured(graph, tensors)
    if not captured:
        return GraphProblems(other=tuple(other))
    if not meta_graph.HasField("saver_def"):
        return GraphProblems(unrestored=tuple(sorted(set(captured.values()))), other=tuple(other))
    restore_op = meta_graph.saver_def.restore_op_name
    restored = _restored(graph, functions, restore_op)
    if restored is None:
        if _split(restore_op)[0] not in graph.nodes:
            other.append(f"the saver's restore op {restore_op!r} is not in the graph")
        return GraphProblems(other=tuple(other))
    unrestored = sorted({v for n, v in captured.items() if n not in restored})
    missing: list[str] = []
    for node_name, var in sorted(captured.items(), key=lambda kv: kv[1]):
        key = restored.get(node_name)
        if (
            node_name in restored
            and key is not None
            and (index_keys is None or key not in index_keys)
        ):
            missing.append(f"{var} ({key})" if key != var else var)
    return GraphProblems(tuple(unrestored), tuple(missing), tuple(other))
