"""Publishing a run on the Hugging Face Hub (``wavtune push``): which files go, the card's
metadata checked first, then one ``create_repo`` + ``upload_folder`` commit.

What goes is the published model (``config.json``, ``*.safetensors``), its processor files
(vocabulary, tokenizer and feature-extractor configs), the model card with its plots, the error
report, ``log.csv``, ``metrics.json``, ``decoding.json``, the resolved ``wavtune.yaml`` and the
TensorBoard events ``wavtune card`` writes (``tensorboard/``, shown by the Hub's metrics tab). What
stays: ``checkpoints/`` (resumable training states), ``audio-cache/``, ``tracking/``,
``log.jsonl`` (the raw log that resumes read), ``predictions-*.jsonl`` (every transcript of the
user's data) and anything else in the folder. The same patterns choose the files of the dry run
and of the upload, through huggingface_hub's own filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wavtune.card.model_card import CARD_FILE
from wavtune.errors import WavtuneError

ALLOW_PATTERNS = (
    "config.json", "*.safetensors", "model.safetensors.index.json",  # the published model
    "preprocessor_config.json", "tokenizer_config.json", "vocab.json", "wavtune_vocab.json",
    "special_tokens_map.json", "added_tokens.json", "tokenizer.json",  # processor files
    CARD_FILE, "plots/*.png", "report.md", "log.csv", "metrics.json", "decoding.json",
    "wavtune.yaml", "tensorboard/*",  # the card's TensorBoard events: the Hub's metrics tab
)
# never uploaded, even where an allow pattern matches (``*.safetensors`` in a checkpoint)
IGNORE_PATTERNS = ("checkpoints/*", "audio-cache/*", "tracking/*", ".*", "*/.*")
REQUIRED = ("config.json", "preprocessor_config.json")  # the card: check_card
CARD_KEYS = ("license", "library_name", "pipeline_tag", "model-index")


class PushError(WavtuneError, RuntimeError):
    """A run cannot be pushed (not finished, card invalid, the Hub unreachable); the message
    says what to do."""


@dataclass(frozen=True)
class UploadFile:
    """One file of the upload: its path in the run directory (= in the repo) and its size."""

    path: str
    size_bytes: int


def upload_plan(run: Path) -> list[UploadFile]:
    """The files ``wavtune push`` uploads from ``run``, sorted by path."""
    from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]

    files = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    chosen = filter_repo_objects(files, allow_patterns=list(ALLOW_PATTERNS),
                                 ignore_patterns=list(IGNORE_PATTERNS))
    return [UploadFile(path, (run / path).stat().st_size) for path in chosen]


def check_card(run: Path) -> dict[str, Any]:
    """The card's Hub metadata, parsed by huggingface_hub; PushError when the card is missing,
    its front matter or ``model-index`` does not parse, or a key the Hub shows is absent."""
    from huggingface_hub import ModelCard

    path = run / CARD_FILE
    if not path.is_file():
        raise PushError(f"{path}: no model card; write it with: wavtune card {run}")
    try:
        card = ModelCard.load(path)
    except Exception as e:  # noqa: BLE001 - any parse failure: the card must be rebuilt
        raise PushError(f"{path}: the card's metadata does not parse ({type(e).__name__}: {e}); "
                        f"rebuild it with: wavtune card {run}") from None
    meta: dict[str, Any] = card.data.to_dict()
    missing = [key for key in CARD_KEYS if not meta.get(key)]
    if missing:
        raise PushError(f"{path}: the card's metadata has no {', '.join(missing)}; rebuild it "
                        f"with: wavtune card {run} (set card.license in the config for a license)")
    if not card.data.eval_results:
        raise PushError(f"{path}: the card's model-index has no results; is {run} a finished "
                        f"run with an eval or test set? Rebuild the card with: wavtune card {run}")
    return meta


def check_run(run: Path) -> list[UploadFile]:
    """The upload plan of a finished run whose card is valid; PushError naming what is wrong."""
    if not run.is_dir():
        raise PushError(f"{run}: no such run directory")
    missing = [name for name in REQUIRED if not (run / name).is_file()]
    if not any(run.glob("*.safetensors")):
        missing.append("*.safetensors (the published weights)")
    if missing:
        raise PushError(f"{run}: missing {', '.join(missing)}; push a finished run (wavtune "
                        f"train writes the model and its card; wavtune card {run} rebuilds the "
                        f"card)")
    check_card(run)
    return upload_plan(run)


def check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]

    try:
        validate_repo_id(repo_id)
    except ValueError as e:  # HFValidationError
        raise PushError(f"repo id {repo_id!r}: {e}; use NAMESPACE/NAME, e.g. "
                        f"my-user/wav2vec2-fsdd") from None
    if "/" not in repo_id:
        raise PushError(f"repo id {repo_id!r}: give the namespace too, e.g. my-user/{repo_id}")


def push_run(run: Path, repo_id: str, private: bool = False, revision: str | None = None,
             token: str | None = None) -> str:
    """Check the run, create the model repo (and branch ``revision``) when missing, upload the
    files of :func:`upload_plan` in one commit; the commit's URL. Nothing is written locally."""
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    plan = check_run(run)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            repo_id=repo_id, folder_path=run, revision=revision, repo_type="model",
            commit_message=f"wavtune push: {run.resolve().name} ({len(plan)} files)",
            allow_patterns=[f.path for f in plan], ignore_patterns=list(IGNORE_PATTERNS))
    except Exception as e:  # noqa: BLE001 - network, auth, offline mode: one message with the fix
        raise PushError(_hub_failure(repo_id, e)) from None
    return str(getattr(info, "commit_url", info))


def _hub_failure(repo_id: str, error: Exception) -> str:
    from huggingface_hub import constants

    text = f"{type(error).__name__}: {error}".strip()
    hints = []
    if constants.HF_HUB_OFFLINE:
        hints.append("HF_HUB_OFFLINE is set: unset it to reach the Hub")
    if "401" in text or "403" in text or "token" in text.lower():
        hints.append("Log in with `hf auth login` or set HF_TOKEN to a token with write access")
    hints.append(f"Check the network and HF_ENDPOINT ({constants.ENDPOINT})")
    return (f"pushing to {repo_id} failed ({text[:300]}); nothing was written locally and no "
            f"file was committed (the upload is one commit). " + "; ".join(hints))
