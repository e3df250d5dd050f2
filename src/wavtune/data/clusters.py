"""The k-means codebook of MFCC frames whose cluster ids HuBERT-style pre-training predicts.

:func:`fit_codebook` fits scikit-learn's ``MiniBatchKMeans`` on standardised MFCC frames (a
seeded sample of the training audio); the codebook is saved as JSON (centres, the
standardisation and the MFCC settings: no pickle) in the run folder, so a resumed run and a
continued pre-training from the folder assign the same ids. Assignment is nearest centre.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wavtune.data.mfcc import MfccSettings, mfcc_frames
from wavtune.errors import WavtuneError

CLUSTERS_FILE = "mfcc_clusters.json"  # in the run folder and the published model folder
FORMAT = 1


class ClusterError(WavtuneError, ValueError):
    """The codebook cannot be fitted or read; the message says why and what to do."""


@dataclass(frozen=True)
class Codebook:
    """k-means centres over standardised MFCC (+deltas) frames."""

    settings: MfccSettings
    centres: npt.NDArray[np.float32]  # [clusters, dims], in standardised units
    mean: npt.NDArray[np.float32]  # [dims]
    scale: npt.NDArray[np.float32]  # [dims]

    @property
    def num_clusters(self) -> int:
        return int(self.centres.shape[0])

    def assign(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        """The nearest centre of each frame of ``features`` [frames, dims]."""
        z = (features - self.mean) / self.scale
        # squared distances without the |z|^2 term, which is the same for every centre
        scores = (self.centres ** 2).sum(axis=1)[None, :] - 2.0 * z @ self.centres.T
        return np.asarray(scores.argmin(axis=1), dtype=np.int64)

    def targets(self, wave: npt.NDArray[np.float32], frames: int) -> npt.NDArray[np.int64]:
        """Cluster ids of the ``frames`` encoder frames of ``wave``."""
        return self.assign(mfcc_frames(wave, self.settings, frames))

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CLUSTERS_FILE
        payload = {"format": FORMAT, "settings": asdict(self.settings),
                   "centres": self.centres.tolist(), "mean": self.mean.tolist(),
                   "scale": self.scale.tolist()}
        path.write_text(json.dumps(payload), encoding="utf-8")
        return path


def load_codebook(path: str | Path) -> Codebook:
    """The codebook saved at ``path`` (a folder holding :data:`CLUSTERS_FILE`, or the file)."""
    file = Path(path)
    file = file / CLUSTERS_FILE if file.is_dir() else file
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
        return Codebook(MfccSettings(**payload["settings"]),
                        np.asarray(payload["centres"], dtype=np.float32),
                        np.asarray(payload["mean"], dtype=np.float32),
                        np.asarray(payload["scale"], dtype=np.float32))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ClusterError(f"{file}: cannot read the MFCC cluster codebook ({e}); delete it to fit "
                           f"a new one (a resumed run then predicts other targets)") from None


def fit_codebook(waves: Iterable[tuple[npt.NDArray[np.float32], int]], settings: MfccSettings,
                 num_clusters: int, seed: int) -> Codebook:
    """k-means over the MFCC frames of ``waves`` ((waveform, encoder frames) pairs)."""
    try:
        from sklearn.cluster import MiniBatchKMeans
    except ImportError:
        raise ClusterError("pretrain.objective=hubert fits k-means with scikit-learn, which is "
                           "not installed: pip install 'wavtune[hubert]' (or scikit-learn)"
                           ) from None
    chunks = [mfcc_frames(wave, settings, frames) for wave, frames in waves if frames > 0]
    features = np.concatenate(chunks) if chunks else np.zeros((0, 1), dtype=np.float32)
    if len(features) < num_clusters:
        raise ClusterError(f"k-means needs at least pretrain.num_clusters={num_clusters} MFCC "
                           f"frames, the audio sample has {len(features)}; give more audio "
                           f"(pretrain.kmeans_sample_s) or lower pretrain.num_clusters")
    mean = features.mean(axis=0)
    scale = np.maximum(features.std(axis=0), 1e-5)
    kmeans = MiniBatchKMeans(n_clusters=num_clusters, random_state=seed, n_init=3,
                             batch_size=min(10_000, len(features)), max_iter=100)
    kmeans.fit((features - mean) / scale)
    return Codebook(settings, np.asarray(kmeans.cluster_centers_, dtype=np.float32),
                    mean.astype(np.float32), scale.astype(np.float32))
