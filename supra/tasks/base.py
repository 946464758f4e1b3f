"""What every Supra LightningModule shares: the optimizer and scheduler it is given as factories, the
run config and checkpoint kind it writes into every checkpoint, and the results of its last test in one
shape for the one report (callbacks/test_report.py).
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable, Collection, Mapping
from typing import Any

import lightning as L
import torch
from torchmetrics import Metric

from supra.tasks.lr_schedules import squeezed_warmup
from supra.utils.distributed import broadcast_object
from supra.utils.errors import SupraUserError
from supra.utils.numbers import is_whole
from supra.utils.state_dicts import same_state

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., torch.optim.Optimizer]  # Hydra `_partial_: true`: factory(param_groups)
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]  # factory(optimizer, total_steps=...)


class SupraTask(L.LightningModule):
    """Subclasses set `checkpoint_kind` (artifacts/kinds.py), give their `parameter_groups()`, and fill
    `test_results` at the end of a test:

        {"split": "test", "scores": {name: float}, "details": {...}, "predictions": [{...}, ...]}

    scores are what the split scored (pycocoevalcap names, psnr, fidelity, ...); details describe how (e.g. the
    captioner's n_images and decode; each task its own counts: n_items, n_captions, ...); predictions are records written as they are to predictions.json.

    Subclass constructors repeat (net, optimizer, scheduler, ..., run_config): Hydra builds each task
    from its config by these names, and save_hyperparameters reads them from the subclass's own frame.
    """

    checkpoint_kind = ""
    # The DataModules whose batches training_step reads (a base class), and the data configs that give them,
    # for the one line that refuses another (the runner checks before the DataModule is built).
    reads_data: type | None = None
    data_choices = ""
    # The conf/callbacks group made for this model: its checkpoint keeps the best of a metric this task logs.
    callbacks_choice = "default"
    # Where each of data_settings' values comes from in the model config, for the line that refuses another value
    data_settings_from: dict[str, str] = {}

    def __init__(self, optimizer: OptimizerFactory | None, scheduler: SchedulerFactory | None = None,
                 run_config: dict | None = None) -> None:
        super().__init__()
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.run_config = run_config  # the composed run config: the checkpoint alone rebuilds the run
        self.test_results: dict[str, Any] = {}
        self.weights_step: int | None = None  # the training step of a checkpoint loaded (a test's pictures say it)

    # -- optimisation -----------------------------------------------------------------------------

    def parameter_groups(self) -> list[dict[str, Any]] | list[torch.nn.Parameter]:
        """What the optimizer trains (weight-decay groups, or a plain list)."""
        raise NotImplementedError

    def optimizer_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for the optimizer factory (e.g. fused=True)."""
        return {}

    def optimizer_takes(self, argument: str) -> bool:
        """Whether the configured optimizer accepts `argument` (e.g. "fused", "hidden_matrices")."""
        factory = getattr(self.optimizer_factory, "func", self.optimizer_factory)  # Hydra's partial
        return argument in inspect.signature(factory).parameters

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(self.parameter_groups(), **self.optimizer_kwargs())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        total_steps = self.trainer.estimated_stepping_batches
        scheduler = self.scheduler_factory(optimizer, total_steps=total_steps)
        self.say_squeezed_warmup(total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def say_squeezed_warmup(self, total_steps: float) -> None:
        """One warning, before the first step, where model.scheduler.warmup_steps is not below the run's steps: the
        schedule squeezes the warm-up into the run (lr_schedules.warmup_within), which a shortened test run would
        otherwise train at a higher learning rate than asked without a word. Not for a resumed fit (its
        checkpoint's schedule goes on), nor under trainer.fast_dev_run, whose length (1 step) is Lightning's, not
        the user's; said by rank 0 alone."""
        warmup_steps = getattr(self.scheduler_factory, "keywords", {}).get("warmup_steps")  # Hydra's partial
        trainer = self.trainer
        if not is_whole(warmup_steps) or trainer.fast_dev_run or trainer.ckpt_path or not trainer.is_global_zero:
            return
        message = squeezed_warmup(int(total_steps), warmup_steps)
        if message:
            log.warning(message)

    def on_fit_start(self) -> None:
        # Lightning warns of any module in eval mode at the start of training, as a possible mistake. The
        # parts a model keeps frozen (a stage-1 VQ-VAE, a pretrained tower's frozen blocks) stay in eval mode
        # on purpose, even through train(): that warning is silenced for exactly their number, so that any
        # other module left in eval mode is still warned of.
        modes = [(module, module.training) for module in self.modules()]
        kept = sum(not module.training for module in self.train().modules())
        for module, training in modes:  # as they were: the count must change nothing
            module.training = training
        if kept:
            warnings.filterwarnings("ignore", message=rf"Found {kept} module\(s\) in eval mode at the start of training")

    # -- logging ----------------------------------------------------------------------------------

    def log_rank_equal(self, stage: str, scores: Mapping[str, float | torch.Tensor], prog_bar: Collection[str] = ()) -> None:
        """Log each of `scores` as `<stage>/<name>`: numbers already equal on every rank (scored once and shared,
        or computed from states summed over the ranks). sync_dist, which Lightning warns of under DDP without,
        takes their max: that number exactly, on any number of ranks (a float32 mean of 3 equal numbers may be
        1 ulp off), and every rank keeps it as a monitor (rank_zero_only is for values only rank 0 logs)."""
        for name, value in scores.items():
            self.log(f"{stage}/{name}", value, prog_bar=name in prog_bar, sync_dist=True, reduce_fx="max")

    def scores_from_rank_zero(self, score: Callable[[], dict[str, float]]) -> dict[str, float]:
        """`score()` run on rank 0 alone (the caption scorers: once per split, not once per rank), its numbers
        shared with every rank. A SupraUserError it raises is raised on every rank: under DDP the others would
        otherwise wait for rank 0's scores."""
        scores: dict[str, float] = {}
        refused: SupraUserError | None = None
        if self.trainer.is_global_zero:
            try:
                scores = score()
            except SupraUserError as err:
                refused = err
        scores, problem = broadcast_object((scores, None if refused is None else str(refused)))
        if problem is not None:
            raise refused or SupraUserError(problem)
        return scores

    # -- what the model needs of its data ------------------------------------------------------------

    def data_settings(self) -> dict[str, Any]:
        """Keyword arguments the runner passes to the DataModule: what the data must follow of this model
        (image size, context, the frozen tokenizer of images). Data configs never read model configs."""
        return {}

    def setup(self, stage: str) -> None:
        """Every task refuses, before any step, data that does not follow its model (`refuse_data_not_following`)."""
        self.refuse_data_not_following(self.trainer.datamodule)

    def refuse_data_not_following(self, datamodule: Any) -> None:
        """One line for a DataModule whose settings are not `data_settings()`'s: the runner builds it with them,
        but one built from Python with its defaults trained a model on another image size without a word, or
        failed in torch on token ids past the model's vocabulary. Values the DataModule does not hold pass."""
        for key, wanted in self.data_settings().items():
            given = getattr(datamodule, key, wanted)
            if not follows(given, wanted):
                raise SupraUserError(f"the data's {key} {how_it_differs(given, wanted)} "
                                     f"({self.data_settings_from.get(key, 'its config')}): build the DataModule "
                                     "with **task.data_settings()")

    # -- checkpoints ------------------------------------------------------------------------------

    def check_resumes(self, saved_net: dict[str, Any], source: str, given: Collection[str] = ()) -> None:
        """One line (SupraUserError naming `source`) unless this task's model can go on from a checkpoint whose run
        built its model with `saved_net` (that run's model.net): settings that make another model of the same
        weights' shapes, or that the checkpoint's optimizer state cannot follow. `given`: the model.net keys the
        command line sets (refuse_changed_model says to drop those). None here: shapes tell."""

    def checkpoint_metadata(self) -> dict[str, Any]:
        """What else a checkpoint needs to rebuild model, data and tokenizer with nothing but the file."""
        return {}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.weights_step = checkpoint.get("global_step")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["supra"] = {"kind": self.checkpoint_kind, "run_config": self.run_config, **self.checkpoint_metadata()}


def computed_over_ranks(metric: Metric) -> Any:
    """`metric.compute()`, which under DDP sums every rank's states first. A split smaller than the ranks leaves a
    rank no row to score (data/base.py RankBatches): its compute is right all the same, and torchmetrics' warning
    that compute came before any update, printed there, is not said."""
    with warnings.catch_warnings():
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            warnings.filterwarnings("ignore", message=r".*was called before the ``update`` method", category=UserWarning)
        return metric.compute()


def warn_of_replaced_bytes(split: str, captions: Collection[str]) -> None:
    """Say once how many generated `captions` of `split` hold U+FFFD: a byte-level BPE (the captioner's, the a2a
    model's image2text) can emit part of a character ("è" is two bytes), which decoding writes as U+FFFD;
    predictions.json keeps the text as decoded."""
    replaced = sum("\ufffd" in caption for caption in captions)
    if replaced:
        log.warning("%s: %d of %d generated captions hold U+FFFD where the model emitted bytes that make no whole "
                    "UTF-8 character; predictions.json keeps them so", split, replaced, len(captions))


def follows(given: Any, wanted: Any) -> bool:
    """Whether a data setting is the model's: a module (a frozen VQ-VAE) when it is that one or holds its weights and
    buffers (loaded twice from one file: its codes mean the same pictures), any other value when equal."""
    if isinstance(wanted, torch.nn.Module):
        return given is wanted or (isinstance(given, torch.nn.Module)
                                   and same_state(given.state_dict(), wanted.state_dict()))
    return (list(given) if isinstance(given, tuple) else given) == wanted


def how_it_differs(given: Any, wanted: Any) -> str:
    """The data's setting beside the model's, for one line: a module by its kind, as its repr fills a page."""
    if isinstance(wanted, torch.nn.Module):
        return f"is another {type(wanted).__name__} than the model's"
    return f"is {given} but the model's is {wanted}"
