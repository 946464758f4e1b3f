"""Test probe for streamed shards: a callback that appends the keys of every training batch to
keys_rank<r>.jsonl in a folder (one line per batch), so tests can see which samples each rank trained on."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L


class TrainedKeys(L.Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / f"keys_rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps({"step": trainer.global_step, "keys": list(batch["keys"])}) + "\n")


def read_keys(out_dir: Path) -> dict[int, list[list[str]]]:
    """{rank: [keys of each batch, in order]}."""
    out = {}
    for path in sorted(Path(out_dir).glob("keys_rank*.jsonl")):
        out[int(path.stem.removeprefix("keys_rank"))] = [json.loads(line)["keys"] for line in path.read_text().splitlines()]
    return out
