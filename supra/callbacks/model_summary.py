"""Lightning's model summary as a rich table, without the FLOPs column.

Lightning counts FLOPs only through a module's `example_input_array`, which Supra's tasks do not define
(their batches are dicts), so its column and total would always read 0. The FLOPs of a training step are
counted in benchmarks/train_throughput.py instead.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary import get_formatted_model_size, get_human_readable_count
from rich.console import Console
from rich.table import Table

RIGHT_ALIGNED = ("Params", "Params per Device", "In sizes", "Out sizes")


class ModelSummaryTable(ModelSummary):
    """The layers (to `max_depth`), their parameters and mode, then the totals."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int = 0,
                  **summarize_kwargs: Any) -> None:
        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style="bold magenta")
        for name, _ in columns:
            table.add_column(name, justify="right" if name in RIGHT_ALIGNED else "left", style="dim" if name == " " else None)
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = Console()
        console.print(table)
        console.print(
            f"[bold]Trainable params[/]: {get_human_readable_count(int(trainable_parameters))}   "
            f"[bold]Non-trainable params[/]: {get_human_readable_count(int(total_parameters - trainable_parameters))}   "
            f"[bold]Total[/]: {get_human_readable_count(int(total_parameters))} "
            f"({get_formatted_model_size(model_size)} MB)   "
            f"[bold]Modules in train / eval mode[/]: {total_training_modes['train']} / {total_training_modes['eval']}")
