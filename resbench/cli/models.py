"""`resbench models`: the registry as a table, each model's policies below it."""

from __future__ import annotations

import click

from resbench.cli._common import Command, console
from resbench.errors import ResbenchError

__all__ = ["models_cmd", "example_model", "listed_parameters"]

EXAMPLE_SIZES = {1: [8000], 2: 14, 3: [8, 14, 14]}  # a training size per input kind, said in the table's caption


def example_model(name: str):
    """The model the table describes: built at the example size of its input kind, or at its own default when
    the architecture needs larger inputs (the 4-stage ConvNeXts)."""
    from resbench.models import create_model, model_class

    dims = model_class(name).DIMS
    try:
        return create_model(name, train_res=EXAMPLE_SIZES[2 if 2 in dims else dims[0]])
    except ResbenchError:
        return create_model(name)


def listed_parameters(name: str) -> int:
    """The table's parameter count: recorded by the families timm builds (listing stays free of timm's
    import), counted on the example model for the others."""
    from resbench.models import count_params, model_class

    recorded = model_class(name).LISTED_PARAMETERS
    return recorded if recorded is not None else count_params(example_model(name))


@click.command("models", cls=Command)
def models_cmd():
    """List the model registry: each model's resolution policies and parameter count.

    \b
    Example:
      resbench models
    """
    from rich.table import Table

    from resbench.models import list_models, model_class

    table = Table(title="resbench models", caption="1 channel, 10 classes, images trained at 14;\n"
                  "inputs: L signals, HxW images, TxHxW clips")
    for col in ("model", "inputs", "parameters", "bandlimit"):
        table.add_column(col, no_wrap=True)
    described = {}  # each model's policies, said once below the table (a column of them needs 240 columns)
    for name in list_models():
        cls = model_class(name)
        inputs = " ".join({1: "L", 2: "HxW", 3: "TxHxW"}[d] for d in cls.DIMS)  # signals, images, clips
        table.add_row(name, inputs, f"{listed_parameters(name):,}", "yes" if cls.has_bandlimit else "-")
        for policy, text in cls.POLICIES.items():
            described.setdefault((policy, text), []).append(name)
    out = console()
    out.print(table)
    out.print("resolution policies (sweep --policy):", soft_wrap=False)
    for (policy, text), names in described.items():
        out.print(f"  {policy} ({', '.join(names)}): {text}", markup=False, soft_wrap=False)
