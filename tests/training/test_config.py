import json

import pytest

from lightgcn_pyg.training import TrainConfig, read_config_file


def test_defaults_are_the_paper_protocol():
    c = TrainConfig()
    assert (c.embedding_dim, c.num_layers, c.lr, c.batch_size, c.reg, c.epochs) == (
        64,
        3,
        1e-3,
        2048,
        1e-4,
        1000,
    )
    assert (c.sampling, c.init, c.metric) == ("user", "xavier", "recall@20")


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("embedding_dim", 0, "'embedding_dim' must be a positive integer"),
        ("num_layers", -1, "'num_layers' must be a non-negative integer"),
        ("lr", 0.0, "'lr' must be positive"),
        ("keep_prob", 0.0, r"'keep_prob' must be in \(0, 1\]"),
        ("init", "he", "'init' must be one of"),
        ("sampling", "pop", "'sampling' must be one of"),
        ("metric", "recall@50", "'metric' must look like"),
    ],
)
def test_bad_values_are_named(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


def test_round_trip_and_unknown_keys():
    c = TrainConfig(ks=(10, 20), lr=0.01)
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_config_files(tmp_path):
    (tmp_path / "c.yaml").write_text("batch-size: 512\nlr: 0.005\nks: [10, 20]\n")
    assert read_config_file(tmp_path / "c.yaml") == {"batch_size": 512, "lr": 0.005, "ks": [10, 20]}
    (tmp_path / "c.json").write_text('{"layers": 2,}')
    with pytest.raises(ValueError, match=r"c.json' is not valid JSON \(line 1\)"):
        read_config_file(tmp_path / "c.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a mapping"):
        read_config_file(tmp_path / "list.json")
