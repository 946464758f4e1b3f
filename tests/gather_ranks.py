"""For the ranks tests/test_distributed.py spawns to gather over: light to import, because a spawned child
imports the module of the function it runs, and the test module's imports (Lightning, Hydra) cost each rank
seconds the collectives under test never use."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist

from supra.utils.distributed import broadcast_object, gather_mappings


def gather_and_broadcast(rank: int, out_dir: str) -> None:
    """One of 2 ranks: gather its share of 5 images, broadcast rank 0's object, and write both to out_dir."""
    # Like DistributedSampler over 5 images: rank 0 gets 0, 2, 4; rank 1 gets 1, 3 and a padded repeat of 0.
    local = {0: "zero", 2: "two", 4: "four"} if rank == 0 else {1: "one", 3: "three", 0: "zero"}
    merged = gather_mappings(local)
    shared = broadcast_object({"rank": rank})
    with open(f"{out_dir}/rank{rank}.json", "w") as f:
        json.dump({"merged": merged, "shared": shared}, f)


@contextmanager
def warnings_logged_to(path: str) -> Iterator[None]:
    """The warnings Supra's loggers log within, written to `path` (and no longer once left)."""
    handler = logging.FileHandler(path)
    handler.setLevel(logging.WARNING)
    logging.getLogger("supra").addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger("supra").removeHandler(handler)
        handler.close()


def set_up_shapes(rank: int, out_dir: str, max_caption_tokens: int) -> None:
    """One of 2 ranks: set up the shapes captions for a fit, as each DDP rank does, and write the warnings it
    logged to out_dir/warnings_rank<rank>.txt."""
    from supra.data.captioning.shapes import ShapesDataModule

    with warnings_logged_to(f"{out_dir}/warnings_rank{rank}.txt"):
        ShapesDataModule(num_train=40, num_val=12, num_test=10, batch_size=8, eval_batch_size=5,
                         max_caption_tokens=max_caption_tokens, tokenizer_path=f"{out_dir}/tokenizer.json").setup("fit")


def read_captions_and_restore(rank: int, out_dir: str) -> None:
    """One of 2 ranks: read a Windows-1252 caption file, a UTF-16 one with a damaged character and a folder of
    Windows-1252 sidecars (written in out_dir beforehand), and restore a checkpoint callback's state whose best file
    is gone (a resumed run's), as each DDP rank does; write the warnings it logged to
    out_dir/read_warnings_rank<rank>.txt."""
    from pathlib import Path

    from supra.callbacks.checkpoint import LastStepModelCheckpoint
    from supra.data.captions import read_caption_text
    from supra.data.folder_index import scan_folder

    with warnings_logged_to(f"{out_dir}/read_warnings_rank{rank}.txt"):
        read_caption_text(Path(out_dir) / "cafe.txt")
        read_caption_text(Path(out_dir) / "utf16.txt")
        scan_folder(Path(out_dir) / "photos")
        LastStepModelCheckpoint(dirpath=f"{out_dir}/rank{rank}", monitor="val/CIDEr", mode="max").load_state_dict(
            {"dirpath": f"{out_dir}/earlier", "best_model_score": 0.5,
             "best_model_path": f"{out_dir}/earlier/best.ckpt"})


def log_image_to_wandb(rank: int, pickled_logger: bytes) -> None:
    """Rank 0 of 2: log an image with the W&B logger its parent made (handed over pickled, as Lightning hands it to
    a ddp_spawn rank), as the sample grids are logged. Rank 1 does not unpickle it: no wandb import to pay for."""
    if rank == 0:
        import pickle

        from PIL import Image

        pickle.loads(pickled_logger).log_image("test/samples", [Image.new("RGB", (8, 8))])


def gather_then_set_up_shapes_on_rank(rank: int, init_file: str, out_dir: str, max_caption_tokens: int,
                                      pickled_logger: bytes) -> None:
    """One of 2 ranks of one process group: gather_and_broadcast, set_up_shapes, read_captions_and_restore, then
    log_image_to_wandb. The 2-process tests share this one spawn: each rank's start-up (torch's import, the process
    group) is paid once."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    gather_and_broadcast(rank, out_dir)
    set_up_shapes(rank, out_dir, max_caption_tokens)
    read_captions_and_restore(rank, out_dir)
    log_image_to_wandb(rank, pickled_logger)
    dist.destroy_process_group()
