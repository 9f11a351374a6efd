"""DistillKac-TS's models in PyTorch: the UNet, the Kac process, the solvers and our checkpoint format."""
from .checkpoint import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, load_weights_into, model_weights, save_checkpoint
from .kac import KacConfig, kac_prior, kac_sample, kac_target, kac_training_batch, kac_velocity
from .model import PRESETS, UNet, model_from_config, unet_config_for
from .solvers import SOLVERS, guided_velocity, integrate, sample


def load_model(path: str):
    """(model with the sampling weights loaded strictly, checkpoint) of one of our files."""
    ckpt = load_checkpoint(path)
    try:
        model = model_from_config(ckpt.config)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    load_weights_into(model, model_weights(ckpt), path)
    return model.eval(), ckpt


__all__ = [
    "CHECKPOINT_FORMAT", "CheckpointError", "KacConfig", "PRESETS", "SOLVERS", "UNet", "guided_velocity", "integrate",
    "kac_prior", "kac_sample", "kac_target", "kac_training_batch", "kac_velocity", "load_checkpoint", "load_model",
    "load_weights_into", "model_from_config", "model_weights", "sample", "save_checkpoint", "unet_config_for",
]
