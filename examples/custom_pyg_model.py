"""Using :class:`lightgcn_pyg.nn.LightGCNConv` inside your own PyG models.

Runs in a second on a tiny random user-item graph:

1. a homogeneous model mixing ``LightGCNConv`` with other PyG layers;
2. a heterogeneous model (``HeteroConv`` over ``user`` / ``item`` node types)
   trained for a few BPR steps;
3. a check that stacking the layer reproduces :class:`lightgcn_pyg.nn.LightGCN`.

    python examples/custom_pyg_model.py
"""

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, SAGEConv

from lightgcn_pyg.nn import LightGCN, LightGCNConv

NUM_USERS, NUM_ITEMS, NUM_EDGES, DIM = 30, 40, 150, 16


def random_graph(seed: int = 0) -> Tensor:
    """A random de-duplicated bipartite edge index [2, E] (row 0 users, row 1 items)."""
    gen = torch.Generator().manual_seed(seed)
    user = torch.randint(0, NUM_USERS, (NUM_EDGES,), generator=gen)
    item = torch.randint(0, NUM_ITEMS, (NUM_EDGES,), generator=gen)
    return torch.stack([user, item]).unique(dim=1)


class HomogeneousModel(torch.nn.Module):
    """Smooths node features with LightGCNConv, then applies a SAGE layer."""

    def __init__(self, num_nodes: int, channels: int):
        super().__init__()
        self.emb = torch.nn.Embedding(num_nodes, channels)
        self.smooth = LightGCNConv(cached=True)  # the graph is fixed: normalise once
        self.sage = SAGEConv(channels, channels)

    def forward(self, edge_index: Tensor) -> Tensor:
        x = self.emb.weight
        x = 0.5 * (x + self.smooth(x, edge_index))
        return self.sage(x, edge_index)


class HeteroLightGCN(torch.nn.Module):
    """LightGCN on a HeteroData graph: HeteroConv of LightGCNConv per edge type."""

    def __init__(self, num_layers: int = 2):
        super().__init__()
        self.user = torch.nn.Embedding(NUM_USERS, DIM)
        self.item = torch.nn.Embedding(NUM_ITEMS, DIM)
        self.convs = torch.nn.ModuleList(
            HeteroConv(
                {
                    ("user", "interacts", "item"): LightGCNConv(),
                    ("item", "rev_interacts", "user"): LightGCNConv(),
                }
            )
            for _ in range(num_layers)
        )

    def forward(self, edge_index_dict: dict) -> dict:
        x = {"user": self.user.weight, "item": self.item.weight}
        layers = [x]
        for conv in self.convs:
            x = conv(x, edge_index_dict)
            layers.append(x)
        return {key: torch.stack([h[key] for h in layers]).mean(0) for key in x}


def main() -> None:
    torch.manual_seed(0)
    edge_index = random_graph()

    # 1. Homogeneous: users 0..U-1, items U..U+I-1, both directions.
    item = edge_index[1] + NUM_USERS
    homogeneous = torch.cat(
        [torch.stack([edge_index[0], item]), torch.stack([item, edge_index[0]])], dim=1
    )
    out = HomogeneousModel(NUM_USERS + NUM_ITEMS, DIM)(homogeneous)
    print(f"homogeneous model output: {tuple(out.shape)}")

    # 2. Heterogeneous: train a few BPR steps.
    data = HeteroData()
    data["user"].num_nodes, data["item"].num_nodes = NUM_USERS, NUM_ITEMS
    data["user", "interacts", "item"].edge_index = edge_index
    data["item", "rev_interacts", "user"].edge_index = edge_index.flip(0)
    model = HeteroLightGCN()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(20):
        emb = model(data.edge_index_dict)
        neg = torch.randint(0, NUM_ITEMS, (edge_index.size(1),))
        pos_score = (emb["user"][edge_index[0]] * emb["item"][edge_index[1]]).sum(-1)
        neg_score = (emb["user"][edge_index[0]] * emb["item"][neg]).sum(-1)
        loss = F.softplus(neg_score - pos_score).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 5 == 0:
            print(f"step {step:2d}  BPR loss {loss.item():.4f}")

    # 3. The same propagation as the packaged model (fast bipartite path).
    lightgcn = LightGCN(NUM_USERS, NUM_ITEMS, edge_index, embedding_dim=DIM, num_layers=2)
    with torch.no_grad():
        lightgcn.user_embedding.weight.copy_(model.user.weight)
        lightgcn.item_embedding.weight.copy_(model.item.weight)
    user_emb, item_emb = lightgcn()
    emb = model(data.edge_index_dict)
    assert torch.allclose(user_emb, emb["user"], atol=1e-5)
    assert torch.allclose(item_emb, emb["item"], atol=1e-5)
    print("HeteroConv(LightGCNConv) x 2 == LightGCN(num_layers=2): OK")


if __name__ == "__main__":
    main()
