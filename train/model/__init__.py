"""The DeepMT-ND network: config and named sizes, blocks, the network and its focus sub-model, I/O."""

from .config import SIZES, VARIANTS, ModelConfig, model_config
from .io import count_flops, load_model, read_model_record, save_model
from .network import CONTRACT_OUTPUTS, TILE, DeepMTND, FocusNet


def build_model(cfg: ModelConfig) -> DeepMTND:
    return DeepMTND(cfg)


__all__ = ["CONTRACT_OUTPUTS", "SIZES", "TILE", "VARIANTS", "DeepMTND", "FocusNet", "ModelConfig", "build_model",
           "count_flops", "load_model", "model_config", "read_model_record", "save_model"]
