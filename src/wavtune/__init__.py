"""wavtune: fine-tune wav2vec2-family speech encoders for CTC recognition and classification."""

__version__ = "0.1.0"
