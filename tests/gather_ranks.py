"""For the ranks tests/test_distributed.py spawns to gather over: light to import, because a spawned child
imports the module of the function it runs, and the test module's imports (Lightning, Hydra) cost each rank
seconds the collectives under test never use."""

import json
import logging

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


def set_up_shapes(rank: int, out_dir: str, max_caption_tokens: int) -> None:
    """One of 2 ranks: set up the shapes captions for a fit, as each DDP rank does, and write the warnings it
    logged to out_dir/warnings_rank<rank>.txt."""
    from supra.data.captioning.shapes import ShapesDataModule

    handler = logging.FileHandler(f"{out_dir}/warnings_rank{rank}.txt")
    handler.setLevel(logging.WARNING)
    logging.getLogger("supra").addHandler(handler)
    ShapesDataModule(num_train=40, num_val=12, num_test=10, batch_size=8, eval_batch_size=5,
                     max_caption_tokens=max_caption_tokens, tokenizer_path=f"{out_dir}/tokenizer.json").setup("fit")
    handler.close()


def gather_then_set_up_shapes_on_rank(rank: int, init_file: str, out_dir: str, max_caption_tokens: int) -> None:
    """One of 2 ranks of one process group: gather_and_broadcast, then set_up_shapes. The 2-process tests share
    this one spawn: each rank's start-up (torch's import, the process group) is paid once."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    gather_and_broadcast(rank, out_dir)
    set_up_shapes(rank, out_dir, max_caption_tokens)
    dist.destroy_process_group()
