"""A finished run's reports (model card, plots, error report), written by the commands that
train (``wavtune train``, ``wavtune demo``) once training has returned: the training loop itself
never imports the card layer."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("wavtune")


def write_run_reports(run_dir: Path) -> list[Path]:
    """Write the reports of ``run_dir``; the files written. A failure is logged with the
    command that rebuilds them, and leaves the run (model, metrics, checkpoints) as it is."""
    from wavtune.card.model_card import write_reports

    try:
        return write_reports(run_dir)
    except Exception as e:  # noqa: BLE001 - reported, and `wavtune card` rebuilds them
        log.warning("model card not written (%s); rebuild it with: wavtune card %s", e, run_dir)
        return []
