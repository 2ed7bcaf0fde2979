"""Build time (needs torch): model, checkpoints, ONNX export, verification and the bundle writer.

from zh_rnn_encoder.export import checkpoint_from_modules, export_bundle
ckpt = checkpoint_from_modules(embedding, rnn, word_to_index)
report = export_bundle(ckpt, "bundles/mine")  # verified against eager PyTorch by default
"""

from zh_rnn_encoder.export.bundle_writer import ExportReport, Verify, export_bundle
from zh_rnn_encoder.export.card import set_quality
from zh_rnn_encoder.export.checkpoint import Checkpoint
from zh_rnn_encoder.export.model import TorchEncoder, init_model
from zh_rnn_encoder.export.tutorial import checkpoint_from_modules
from zh_rnn_encoder.export.verify import VerificationError

__all__ = [
    "Checkpoint",
    "ExportReport",
    "TorchEncoder",
    "Verify",
    "VerificationError",
    "checkpoint_from_modules",
    "export_bundle",
    "init_model",
    "set_quality",
]
