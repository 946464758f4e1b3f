"""The Optuna sampler's seed for a study kept in storage (`hydra.sweeper.storage=sqlite:///sweeps.db`).

A fixed seed restarts the sampler's random numbers in every invocation: the next session of a resumable
study would draw its first trials' hyperparameters again, training the same trials twice (the random
start-up trials exactly; TPE's draws follow the same numbers too). The seed is therefore the configured
one plus the number of trials the study already holds: each session draws anew, and the same sequence of
sessions draws the same trials.
"""

from __future__ import annotations

import logging

from supra.utils.numbers import counted

log = logging.getLogger(__name__)

# (storage, study, trials) already said: Hydra resolves the sweeper's `${study_seed:...}` more than once a session
_SAID: set[tuple[str, str, int]] = set()


def study_seed(seed: int | None, storage: str | None, study_name: str | None) -> int | None:
    """`seed`, advanced by the trials already stored under `study_name` in `storage` (none: `seed`)."""
    if seed is None or not storage or not study_name:
        return seed
    try:
        import optuna

        summaries = optuna.study.get_all_study_summaries(storage)
    except Exception as err:  # a missing folder, a locked file: the sweeper itself says what is wrong
        log.debug("study %s in %s not read (%s): seed %s", study_name, storage, err, seed)
        return seed
    trials = next((summary.n_trials for summary in summaries if summary.study_name == study_name), 0)
    if trials and (storage, study_name, trials) not in _SAID:
        _SAID.add((storage, study_name, trials))
        log.info("study %s holds %s: its sampler's seed is %d + %d", study_name, counted(trials, "trial"), seed, trials)
    return seed + trials
