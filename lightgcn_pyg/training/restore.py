"""Rebuild a trained model, its data and its config from a checkpoint alone."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional, Union

import torch

from lightgcn_pyg.data import InteractionSet
from lightgcn_pyg.nn import LightGCN
from lightgcn_pyg.training.checkpoint import CheckpointError, load_checkpoint
from lightgcn_pyg.training.config import TrainConfig


class RestoredRun(NamedTuple):
    """A model ready for inference with the data and config it was trained with."""

    model: LightGCN
    data: InteractionSet
    config: TrainConfig
    epoch: int


def restore(
    path: Union[str, Path],
    device: Union[str, torch.device] = "cpu",
    data: Optional[InteractionSet] = None,
) -> RestoredRun:
    """Load ``path`` and rebuild the :class:`LightGCN` it holds, in eval mode on ``device``.

    Args:
        path (str or Path): A ``best.pt`` / ``last.pt`` file.
        device: Where to put the model. (default: :obj:`"cpu"`)
        data (InteractionSet, optional): Data to use instead of the interactions stored in the
            checkpoint (e.g. another test split); its id maps must match the checkpoint's.
            (default: :obj:`None`)
    """
    device = torch.device(device)
    state = load_checkpoint(path, map_location="cpu")
    try:
        stored = InteractionSet.from_state_dict(state["data"])
        config = TrainConfig.from_dict(state["config"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"Checkpoint '{path}' is damaged: {e}") from None
    if data is None:
        data = stored
    elif data.fingerprint() != stored.fingerprint():
        raise CheckpointError(
            f"Checkpoint '{path}' was trained on other data: the given data's id maps differ "
            f"({data.num_users} users / {data.num_items} items vs {stored.num_users} / "
            f"{stored.num_items} in the checkpoint)"
        )
    try:
        args = dict(state["model_args"])
        if (args.get("num_users"), args.get("num_items")) != (stored.num_users, stored.num_items):
            raise ValueError(
                f"the model is for {args.get('num_users')} users / {args.get('num_items')} items "
                f"but the stored data has {stored.num_users} / {stored.num_items}"
            )
        model = LightGCN(edge_index=stored.train_edge_index, **args)
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"Checkpoint '{path}' does not fit the model: {first}") from None
    for name, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            raise CheckpointError(f"Checkpoint '{path}' holds non-finite values in '{name}'")
    model.to(device).eval()
    return RestoredRun(model=model, data=data, config=config, epoch=int(state["epoch"]))
