"""The precisions a model can be built at, and how an fp32 graph becomes each of them.

Where the bytes and the time are (the 100k-item catalog, dim 32): the item table
of the scoring MatMul and the history table behind a Gather hold 12.8 MB each of
the 27 MB; at batch 32 the MatMul (fused with the bias Add into a Gemm) takes
about 60% of a call and the TopK over all 100k scores most of the rest.

* ``fp16``: ONNX Runtime's float16 converter rewrites every float tensor to
  float16 except what its default block list keeps (TopK, Max), and keeps the
  graph's inputs and outputs as they were, so the serving contract (``scores``
  FP32) holds. Halves the size; the speed-up is a GPU's, not a CPU's.
* ``int8``: ONNX Runtime's *dynamic* quantization of the MatMul and the Gathers.
  Weights are int8 offline (the item table symmetric with one scale per item, the
  Gather tables uint8 with one scale each); the user vector [batch, dim] is
  quantized at run time to uint8 from its own range, and the MatMul's int32 result
  is scaled back to float32 scores.

Why dynamic and not static quantization with calibration on held-out interactions
(measured on the 100k-item model, 2,048 held-out users' requests to calibrate):
static also quantizes the MatMul's output, so all 100k scores pass through 256
calibrated levels before TopK. It kept fp32's exact top-20 for 7% of held-out
requests (dynamic: 30%), fp32's 20 items for 76% (dynamic: 89%), Recall@20 at 99.5%
of fp32's (dynamic: 100.2%), and ran a batch of 64 in 11.9 ms as QDQ (its table
DequantizeLinear runs on every call) or 9.7 ms as QOperator, against dynamic's
6.7 ms and fp32's 11.6 ms. Dynamic's run-time range costs one min/max over
batch x 32 values: nothing beside the 100k-wide MatMul and TopK. One scale per
table instead of per item is 2 points smaller (26%) and within 10% of its speed,
faster in one run, slower in another, but returns fp32's 20 items for 85% of
requests instead of 89%.

One consequence to know: the user vector's scale is taken over the whole batch,
so an int8 answer can differ in the last digits depending on which requests
Triton batched it with (the reference in ``precision_reference`` does the same).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

import onnx


class Precision(str, Enum):
    """The numeric precision of a built model's weights and arithmetic."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"

    def __str__(self) -> str:
        return self.value


INT8_OP_TYPES = ["MatMul", "Gather"]
"""What int8 quantizes: the scoring MatMul and the embedding Gathers (user, history)."""


def convert(fp32_model: Path, precision: Precision, target: Path) -> None:
    """Write ``fp32_model`` at ``precision`` to ``target``; inputs and outputs keep their types."""
    if precision is Precision.FP32:
        target.write_bytes(fp32_model.read_bytes())
    elif precision is Precision.FP16:
        _to_fp16(fp32_model, target)
    else:
        _to_int8(fp32_model, target)
    onnx.checker.check_model(onnx.load(str(target)), full_check=True)


def _to_fp16(fp32_model: Path, target: Path) -> None:
    # Imported here: ONNX Runtime's converters cost every CLI start ~0.1 s otherwise.
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    converted = convert_float_to_float16(onnx.load(str(fp32_model)), keep_io_types=True)
    # The converter appends its Cast nodes at the end; ONNX wants producers first.
    model = OnnxModel(converted)
    model.topological_sort()
    onnx.save_model(model.model, str(target))


def _to_int8(fp32_model: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="spillover-int8-") as scratch:
        # The quantizer writes shape-inferred copies beside its output; keep them out
        # of the model repository Triton polls.
        staged = Path(scratch) / "model.onnx"
        with _quiet_quantizer():
            quantize_dynamic(
                fp32_model,
                staged,
                op_types_to_quantize=INT8_OP_TYPES,
                per_channel=True,
                weight_type=QuantType.QInt8,
            )
        target.write_bytes(staged.read_bytes())


class _QuantizerChatter(logging.Filter):
    """The quantizer logs on the root logger: its progress notes (INFO), and advice to
    run its pre-processing first, which does not apply here: that step fuses the scoring
    MatMul and the bias Add into a Gemm, which dynamic quantization does not cover, so
    following it would leave the biggest table in fp32."""

    def filter(self, record: logging.LogRecord) -> bool:
        advice = "pre-processing before quantization" in record.getMessage()
        return record.levelno >= logging.WARNING and not advice


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    chatter = _QuantizerChatter()
    root = logging.getLogger()
    root.addFilter(chatter)
    try:
        yield
    finally:
        root.removeFilter(chatter)
