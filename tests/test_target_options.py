"""A key a configured class does not take (a typo, `+model.foo=...`) is one line naming it, before anything is
built, not the constructor's TypeError from inside instantiate (one traceback per job of a sweep); train.py's
line: test_train_and_evaluate.py's BAD_TRAIN_INPUTS."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import supra.runner.components  # noqa: F401 - the resolvers the shipped configs use
from supra.utils.errors import SupraUserError
from supra.utils.target_options import check_target_options
from tests.conftest import ROOT, compose_config

CONF = ROOT / "conf"
GROUPS = ("model", "data", "trainer", "callbacks", "logger")


def composed(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def every_shipped_choice() -> list[str]:
    choices = [f"experiment={p.stem}" for p in sorted((CONF / "experiment").glob("*.yaml"))]
    for group in ("model", "data", "trainer", "callbacks", "logger", "debug", "study"):
        choices += [f"{group}={p.stem}" for p in sorted((CONF / group).glob("*.yaml"))]
    for part in ("encoder", "fusion", "decoder"):
        choices += [f"model/{part}={p.stem}" for p in sorted((CONF / "model" / part).glob("*.yaml"))]
    return choices


def test_every_shipped_config_takes_only_options_its_classes_have():
    for choice in every_shipped_choice():
        cfg = composed(choice)
        for group in GROUPS:
            check_target_options(cfg.get(group), group)


@pytest.mark.parametrize(("override", "message"), [
    ("+model.foo=1", "model.foo=1: CaptioningTask has no option foo"),
    ("+model.weightdecay=0.1", "model.weightdecay=0.1: CaptioningTask has no option weightdecay: did you mean "
                               "model.weight_decay?"),
    ("+model.optimizer.betas2=0.9", "model.optimizer.betas2=0.9: AdamW has no option betas2: did you mean "
                                    "model.optimizer.betas?"),
    ("+trainer.max_step=3", "trainer.max_step=3: Trainer has no option max_step: did you mean trainer.max_steps?"),
    # a model's **config builds its config dataclass: that class's fields are its options
    ("+model.net.N_LAYER=4", "model.net.N_LAYER=4: VLMNano has no option N_LAYER: did you mean model.net.N_LAYERS?"),
    # a DataModule passes **settings on to its base class: the base's options count, others do not
    ("+data.batchsize=8", "data.batchsize=8: ShapesDataModule has no option batchsize: did you mean data.batch_size?"),
    ("+callbacks.model_checkpoint.every=2", "callbacks.model_checkpoint.every=2: LastStepModelCheckpoint has no "
                                            "option every"),
])
def test_a_key_its_class_does_not_take_is_named_with_the_nearest_option(override, message):
    cfg = composed(override)
    group = override.lstrip("+").split(".")[0]
    with pytest.raises(SupraUserError) as refused:
        check_target_options(cfg.get(group), group)
    assert str(refused.value).startswith(message)


def test_a_short_list_of_options_is_given_when_no_option_is_near(tmp_path):
    cfg = compose_config("train", tmp_path, ["+logger.csv.xyz=1"])  # on the command line: left out there, no ~ needed
    with pytest.raises(SupraUserError) as refused:
        check_target_options(cfg.logger, "logger")
    assert str(refused.value) == ("logger.csv.xyz=1: CSVLoggerKeepingColumns has no option xyz (its options at "
                                  "logger.csv: flush_logs_every_n_steps, name, prefix, save_dir, version)")


def test_an_option_the_composed_config_brings_is_said_with_how_to_remove_it_and_the_tasks_own_keywords_unlisted(
        tmp_path):
    """Switching to SGD kept the recipe's betas: the line listed `params` (the task's to pass; Muon's hidden_matrices
    too) as an option, and did not say that Hydra's ~ removes an inherited key."""
    cfg = compose_config("train", tmp_path / "sgd", ["model.optimizer._target_=torch.optim.SGD"])
    with pytest.raises(SupraUserError) as refused:
        check_target_options(cfg.model, "model")
    assert str(refused.value) == ("model.optimizer.betas=[0.9, 0.95]: SGD has no option betas: remove it with "
                                  "~model.optimizer.betas (its options at model.optimizer: dampening, differentiable, "
                                  "foreach, lr, maximize, momentum, nesterov)")
    cfg = compose_config("train", tmp_path / "muon", ["model.optimizer._target_=supra.tasks.optimizers.MuonWithAdamW",
                                                      "+model.optimizer.foo=1"])
    with pytest.raises(SupraUserError) as refused:
        check_target_options(cfg.model, "model")
    assert str(refused.value) == ("model.optimizer.foo=1: MuonWithAdamW has no option foo (its options at "
                                  "model.optimizer: betas, eps, lr, momentum, nesterov, ns_steps)")


def test_an_optimizer_keyword_the_task_sets_itself_is_not_offered_at_model_optimizer(tmp_path):
    """The captioner's and a2a's parameter groups carry model.weight_decay (model.optimizer.weight_decay is
    refused): the line listed the optimizer's weight_decay as an option, and a near miss of it pointed there; the
    VQ-VAE's one plain group takes the optimizer's own."""
    for model in ("vlm_nano", "a2a_nano"):
        cfg = compose_config("train", tmp_path / model, [f"model={model}", "+model.optimizer.foo=1"])
        with pytest.raises(SupraUserError) as refused:
            check_target_options(cfg.model, "model")
        fused = "" if model == "vlm_nano" else " fused,"  # the captioner's is model.fused_optimizer's (below)
        assert str(refused.value) == ("model.optimizer.foo=1: AdamW has no option foo (its options at model.optimizer: "
                                      f"amsgrad, betas, capturable, differentiable, eps, foreach,{fused} lr, maximize)")
    cfg = compose_config("train", tmp_path / "near", ["+model.optimizer.weight_dcay=0.1"])
    with pytest.raises(SupraUserError) as refused:
        check_target_options(cfg.model, "model")
    assert str(refused.value) == ("model.optimizer.weight_dcay=0.1: AdamW has no option weight_dcay: did you mean "
                                  "model.weight_decay?")
    cfg = compose_config("train", tmp_path / "vq", ["model=vqvae_f8", "+model.optimizer.weight_dcay=0.1"])
    with pytest.raises(SupraUserError) as refused:
        check_target_options(cfg.model, "model")
    assert str(refused.value).endswith("did you mean model.optimizer.weight_decay?")


@pytest.mark.parametrize(("override", "message"), [
    ("callbacks.model_checkpoint.mode=maximum", "callbacks.model_checkpoint: `mode` can be min, max but got maximum"),
    ("callbacks.lr_monitor.logging_interval=batch",
     "callbacks.lr_monitor: logging_interval should be `step` or `epoch` or `None`"),
    ("+callbacks.early_stopping._target_=lightning.pytorch.callbacks.EarlyStopping "
     "+callbacks.early_stopping.monitor=val/loss +callbacks.early_stopping.mode=lowest",
     "callbacks.early_stopping: `mode` can be min, max, got lowest"),
])
def test_a_callback_setting_lightning_refuses_as_it_is_built_is_one_line_naming_the_callback(override, message,
                                                                                              tmp_path):
    """Lightning's MisconfigurationException, which names the setting and what it takes, with the callback's key:
    not Hydra's multi-line "Error in call to target" (exit status 1, a traceback in train.log)."""
    from supra.runner.components import instantiate_group
    from tests.conftest import compose_config

    cfg = compose_config("train", tmp_path, override.split())
    with pytest.raises(SupraUserError) as refused:
        instantiate_group(cfg.callbacks, "callbacks")
    assert str(refused.value) == message
