"""Generated inputs fit the model: indices within the tables they index, masks and token types
0 or 1, dims the input names tie together kept consistent."""

import numpy as np
import onnx
from onnx import TensorProto, helper

from onnxdoctor import api
from onnxdoctor.engines.inputs import make_inputs, zero_inputs
from onnxdoctor.verify import make_inputs as make_inputs_from_verify

HIDDEN = 8


def _table(name: str, rows: int) -> onnx.TensorProto:
    values = np.random.default_rng(1).standard_normal((rows, HIDDEN)).astype(np.float32)
    return onnx.numpy_helper.from_array(values, name)


def bert_like() -> onnx.ModelProto:
    """BERT's embeddings as the exporter writes them: input_ids into a 30-row word table,
    token_type_ids (through a Cast) into a 2-row type table, attention_mask turned into an additive mask."""
    sequence = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, sequence)
              for name in ("input_ids", "token_type_ids", "attention_mask")]
    nodes = [
        helper.make_node("Gather", ["word_embeddings", "input_ids"], ["words"], name="word_lookup"),
        helper.make_node("Cast", ["token_type_ids"], ["types_int32"], name="types_to_int32", to=TensorProto.INT32),
        helper.make_node("Gather", ["token_type_embeddings", "types_int32"], ["types"], name="type_lookup"),
        helper.make_node("Add", ["words", "types"], ["embedded"], name="embed"),
        helper.make_node("Unsqueeze", ["attention_mask", "last_axis"], ["mask_column"], name="mask_column"),
        helper.make_node("Cast", ["mask_column"], ["mask_float"], name="mask_to_float", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["embedded", "mask_float"], ["hidden"], name="apply_mask"),
    ]
    graph = helper.make_graph(
        nodes, "bert_like", inputs, [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, None)],
        initializer=[_table("word_embeddings", 30), _table("token_type_embeddings", 2),
                     onnx.numpy_helper.from_array(np.array([-1], np.int64), "last_axis")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def with_past() -> onnx.ModelProto:
    """GPT-2's cache: the key of this step joins the past keys, and the attention mask spans both."""
    inputs = [
        helper.make_tensor_value_info("past_key", TensorProto.FLOAT, ["batch", "past_sequence", HIDDEN]),
        helper.make_tensor_value_info("key", TensorProto.FLOAT, ["batch", "sequence", HIDDEN]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "past_sequence + sequence"]),
    ]
    nodes = [
        helper.make_node("Concat", ["past_key", "key"], ["keys"], name="join_past", axis=1),
        helper.make_node("Unsqueeze", ["attention_mask", "last_axis"], ["mask_column"], name="mask_column"),
        helper.make_node("Cast", ["mask_column"], ["mask_float"], name="mask_to_float", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["keys", "mask_float"], ["masked_keys"], name="apply_mask"),
    ]
    graph = helper.make_graph(
        nodes, "with_past", inputs, [helper.make_tensor_value_info("masked_keys", TensorProto.FLOAT, None)],
        initializer=[onnx.numpy_helper.from_array(np.array([-1], np.int64), "last_axis")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_indices_stay_within_the_tables_they_index():
    feeds = make_inputs(bert_like())
    assert feeds["input_ids"].max() < 30 and feeds["input_ids"].min() >= 0
    # Through the Cast: token types index a 2-row table.
    assert set(np.unique(feeds["token_type_ids"])) <= {0, 1}
    assert set(np.unique(feeds["attention_mask"])) == {0, 1}
    assert feeds["input_ids"].shape == feeds["token_type_ids"].shape == feeds["attention_mask"].shape


def test_fix_runs_a_bert_like_model_without_given_inputs(tmp_path):
    onnx.save(bert_like(), tmp_path / "bert.onnx")
    report = api.fix(tmp_path / "bert.onnx", None)
    assert report.inputs["input_ids"] == report.inputs["attention_mask"]


def test_dims_tied_by_their_names_stay_consistent(tmp_path):
    feeds = make_inputs(with_past())
    past, sequence = feeds["past_key"].shape[1], feeds["key"].shape[1]
    assert feeds["attention_mask"].shape == (1, past + sequence)
    onnx.save(with_past(), tmp_path / "past.onnx")
    api.fix(tmp_path / "past.onnx", None)


def test_a_static_shape_sets_a_named_dim_everywhere():
    feeds = make_inputs(with_past(), {"key": (2, 5, HIDDEN)})
    assert feeds["key"].shape == (2, 5, HIDDEN)
    assert feeds["past_key"].shape[0] == 2
    assert feeds["attention_mask"].shape == (2, feeds["past_key"].shape[1] + 5)


def test_zero_inputs_keep_shapes_and_types():
    feeds = make_inputs(bert_like())
    zeros = zero_inputs(feeds)
    assert {name: (value.shape, value.dtype) for name, value in zeros.items()} == {
        name: (value.shape, value.dtype) for name, value in feeds.items()}
    assert not any(value.any() for value in zeros.values())


def test_verify_still_offers_make_inputs():
    assert make_inputs_from_verify is make_inputs
