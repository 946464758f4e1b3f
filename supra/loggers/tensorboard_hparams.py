"""A run's settings and its final scores in TensorBoard's HPARAMS tab, written once as the run ends.

The tab lists a run only with metrics tied to its settings (Lightning's placeholder `hp_metric=-1`, which read as a
score, is off: conf/logger/tensorboard.yaml), so both are logged together through Lightning's
`TensorBoardLogger.log_hyperparams(params, metrics)` once the scores are known: after the fit, and after the test
where the run tests. Each score is its own scalar under `hp/`, a point at the run's last step: logged again under
its own name, it would add a point to that curve.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import Logger, TensorBoardLogger

HPARAMS_PREFIX = "hp/"
SCORED_STAGES = ("val/", "test/")


def final_scores(metrics: dict[str, float], monitor: str | None, best: float | None) -> dict[str, float]:
    """The scores a run is compared by, named as the HPARAMS tab shows them: each val/ metric of its last
    validation and test/ metric of its test as `hp/<name>`, and the best value of the checkpoint's `monitor`
    as `hp/best/<monitor>` (where the run knows it)."""
    scores = {f"{HPARAMS_PREFIX}{name}": value for name, value in sorted(metrics.items())
              if name.startswith(SCORED_STAGES)}
    if monitor and best is not None:
        scores[f"{HPARAMS_PREFIX}best/{monitor}"] = best
    return scores


def log_hparams_with_scores(loggers: list[Logger], run_config: dict[str, Any], scores: dict[str, float],
                            step: int) -> None:
    """Tie `scores` to the run's settings in each TensorBoard logger of `loggers` (the others keep what they
    logged): Lightning flattens `run_config` (`model/optimizer/lr`) into the tab's columns. Nothing without scores
    (a run that neither validated nor tested), rather than a placeholder."""
    if not scores:
        return
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            # the same run_config as logged at the start: its hparams.yaml stays the nested config
            logger.log_hyperparams(run_config, metrics=scores, step=step)
            logger.finalize("success")  # written now: the fit's and test's own teardowns are past
