"""A broken exported graph for the export tests: `onnx_outputs` with one output moved."""


def onnx_outputs_shifted(real, output: str, shift: float, *, only_fp16: bool = False):
    """`real` (an `onnx_outputs`) with `output` moved by `shift`: on every graph, or only on the fp16 graphs, which
    then give their fp32 twin's value plus `shift`."""

    def shifted(path, images, batch=4):
        outputs = real(path, images, batch)
        if not only_fp16:
            outputs[output] = outputs[output] + shift
        elif path.name.endswith(".fp16.onnx"):
            outputs[output] = real(path.with_name(path.name.replace(".fp16", "")), images, batch)[output] + shift
        return outputs

    return shifted
