"""Stage ``params``: recompose ``params.yaml`` from ``conf/`` (see ``aibridge.params_sync``)."""

from __future__ import annotations

from rich.console import Console

from aibridge.params_sync import sync_params
from aibridge.paths import workspace_root

console = Console(stderr=True, soft_wrap=True)  # not stages.common: this stage needs no settings


def main() -> None:
    kept = sync_params(workspace_root())
    if kept:
        listed = ", ".join(f"{k}={v}" for k, v in kept.items())
        console.print(
            f"params: kept {len(kept)} override(s) from `dvc exp run -S` or a hand edit: {listed}. "
            "conf/ is ignored for these keys until `aibridge params reset` drops them."
        )
    else:
        console.print("params: params.yaml composed from conf/")
