"""The collectives Supra uses are identities in one process and gather every rank's items once under DDP."""

import json

import torch.distributed as dist
import torch.multiprocessing as mp

from supra.utils.distributed import broadcast_object, gather_mappings


def test_gather_and_broadcast_are_identity_without_ddp():
    assert gather_mappings({3: "x", 1: "y"}) == {3: "x", 1: "y"}
    assert broadcast_object({"CIDEr": 1.5}) == {"CIDEr": 1.5}


def _ddp_worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    # Like DistributedSampler over 5 images: rank 0 gets 0, 2, 4; rank 1 gets 1, 3 and a padded repeat of 0.
    local = {0: "zero", 2: "two", 4: "four"} if rank == 0 else {1: "one", 3: "three", 0: "zero"}
    merged = gather_mappings(local)
    shared = broadcast_object({"rank": rank})
    with open(f"{out_dir}/rank{rank}.json", "w") as f:
        json.dump({"merged": merged, "shared": shared}, f)
    dist.destroy_process_group()


def test_gather_over_two_processes_keeps_each_image_once(tmp_path):
    mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    expected = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four"}
    for result in results:
        assert result["merged"] == expected
        assert result["shared"] == {"rank": 0}
