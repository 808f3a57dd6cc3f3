"""The front-end's ``spike_dropout`` (training only): it drops block outputs while training, is the
identity in eval mode (so inference, streaming and the fused path are unchanged), and is validated."""

import pytest
import torch

from mambaspike.errors import ConfigError
from mambaspike.layers.frontend import SpikingFrontEnd
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model

SMALL = dict(input_shape=(2, 12, 12), channels=(4, 8, 8), d_model=16, n_layers=1, spatial_out=2)


def test_eval_mode_is_the_model_without_dropout(firing):
    torch.manual_seed(0)
    plain = firing(build_model(ModelConfig(**SMALL))).eval()
    dropped = build_model(ModelConfig(**SMALL, spike_dropout=0.3)).eval()
    dropped.load_state_dict(plain.state_dict())
    x = (torch.rand(14, 2, *SMALL["input_shape"]) < 0.3).float() * 3
    with torch.no_grad():
        torch.testing.assert_close(dropped(x), plain(x), rtol=0, atol=0)
        assert (dropped.stream(x) - plain(x)).abs().max() <= 1e-5


def test_training_drops_block_outputs_at_the_rate_asked(firing):
    torch.manual_seed(0)
    fe = firing(SpikingFrontEnd(2, (4, 8), spike_dropout=0.5, temporal_pool=1)).train()
    x = (torch.rand(30, 8, 2, 12, 12) < 0.5).float() * 3
    seen = []
    fe.blocks[1].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    out, _ = fe(x)
    into_block1 = seen[0]
    values = set(into_block1.unique().tolist())
    assert values <= {0.0, 2.0}  # binary spikes, kept ones scaled by 1 / (1 - p)
    spikes, _ = fe.blocks[0](x)  # block 0's own spikes: the dropout drops about half of them
    kept = float((into_block1 > 0).sum()) / float(spikes.detach().sum())
    assert 0.4 < kept < 0.6
    fe.eval()
    seen.clear()
    with torch.no_grad():
        fe(x)
    assert set(seen[0].unique().tolist()) <= {0.0, 1.0}


def test_bad_rates_are_named():
    with pytest.raises(ConfigError, match=r"spike_dropout = 1.0: expected a finite number >= 0 and <= 0.95"):
        ModelConfig(spike_dropout=1.0)
    with pytest.raises(ValueError, match="spike_dropout"):
        SpikingFrontEnd(2, (4, 8), spike_dropout=-0.1)


def test_records_without_the_field_have_no_dropout():
    from mambaspike.training.run import config_hash, resolved_config

    now = ModelConfig().to_dict()
    older = {k: v for k, v in now.items() if k != "spike_dropout"}
    assert ModelConfig.from_dict(older).spike_dropout == 0.0
    train = {"dataset": "ndigits", "epochs": 12}
    assert config_hash(resolved_config(train, older, "v")) == config_hash(resolved_config(train, now, "v"))
