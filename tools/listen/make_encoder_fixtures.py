"""Tiny ONNX models for `listen --encoder` tests: one that follows the conventions, one that does not.

By hand, with the `onnx` package from PyPI (no runtime needed):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install onnx==1.23.2
    /tmp/venv/bin/python tools/listen/make_encoder_fixtures.py

Writes, into tests/fixtures/listen/:

* `frame_encoder.onnx`: input `audio` float32 [1, 16000] (one second at 16 kHz, a fixed window),
  custom metadata `sample_rate` = 16000; the audio cut into 100 frames of 160 samples, each
  multiplied by a fixed [160, 8] matrix (seeded), giving output `features` float32 [1, 100, 8]:
  a stand-in for a wav2vec2-style encoder, small enough to commit.
* `image_model.onnx`: input float32 [1, 3, 32, 32] (an image model), output its mean: a model
  `listen` must refuse with a clear message.
"""

import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "listen"
OPSET = [helper.make_opsetid("", 17)]


def frame_encoder() -> onnx.ModelProto:
    rng = np.random.default_rng(16000)
    weight = (rng.standard_normal((160, 8)) / np.sqrt(160)).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["audio", "frame_shape"], ["frames"]),
        helper.make_node("MatMul", ["frames", "weight"], ["projected"]),
        helper.make_node("Tanh", ["projected"], ["features"]),
    ]
    graph = helper.make_graph(
        nodes,
        "frame_encoder",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 16000])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 100, 8])],
        initializer=[
            numpy_helper.from_array(np.array([1, 100, 160], dtype=np.int64), "frame_shape"),
            numpy_helper.from_array(weight, "weight"),
        ],
    )
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="latent-choir fixtures")
    model.ir_version = 8
    helper.set_model_props(model, {"sample_rate": "16000"})
    onnx.checker.check_model(model)
    return model


def image_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0)],
        "image_model",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="latent-choir fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, model in [("frame_encoder.onnx", frame_encoder()), ("image_model.onnx", image_model())]:
        path = OUT / name
        onnx.save(model, path)
        print(f"{path}: {path.stat().st_size} bytes")
