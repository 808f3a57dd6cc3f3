"""Where the front-end's temporal pooling sits (``temporal_pool_after``): the bins each block sees, exact
streaming at every place, validation by name, older records, and NIR export's block ranges."""

import pytest
import torch

from mambaspike.errors import ConfigError, ExportError
from mambaspike.layers import frontend_fused
from mambaspike.layers.frontend import SpikingFrontEnd
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model

SMALL = dict(channels=(4, 8, 8), d_model=16, n_layers=1, spatial_out=2)


@pytest.mark.parametrize("shape", [(2, 12, 12), (3,)])
@pytest.mark.parametrize("after,readout", [(0, "spikes"), (1, "spikes"), (2, "spikes"), (1, "membrane")])
def test_every_place_streams_exactly(shape, after, readout, firing):
    torch.manual_seed(0)
    cfg = ModelConfig(input_shape=shape, **SMALL, temporal_pool_after=after, readout=readout)
    model = firing(build_model(cfg)).eval()
    dts = [b.lif.dt for b in model.frontend.blocks]
    assert dts == [5.0 if i <= after else 10.0 for i in range(3)]  # blocks after the pooling see 2 bins as one
    x = (torch.rand(19, 2, *shape) < 0.3).float() * 3
    with torch.no_grad():
        full = model(x)
        out, _ = model.frontend(x)
        ref, _ = model.frontend.forward_reference(x)
    assert out.shape[0] == 10  # ceil(19 / 2) bins out, wherever the pooling is
    torch.testing.assert_close(out, ref)
    assert out.abs().sum() > 0
    assert (model.stream(x) - full).abs().max() <= 1e-5


def test_a_later_place_changes_the_model_and_the_first_is_the_old_one(firing):
    torch.manual_seed(0)
    x = (torch.rand(12, 2, 2, 12, 12) < 0.3).float() * 3
    outs = []
    for after in (0, 1):
        torch.manual_seed(1)
        model = firing(build_model(ModelConfig(input_shape=(2, 12, 12), **SMALL, temporal_pool_after=after))).eval()
        with torch.no_grad():
            outs.append(model.frontend(x)[0])
    assert not torch.equal(outs[0], outs[1])


def test_the_fused_dense_front_end_takes_the_first_place_only(firing):
    fe = firing(SpikingFrontEnd(3, (4, 8), spatial=False, temporal_pool_after=1)).eval()
    x = (torch.rand(9, 2, 3) < 0.3).float()
    with torch.no_grad():
        assert "temporal_pool_after" in frontend_fused.unsupported(fe, x, None)
        torch.testing.assert_close(fe(x)[0], fe.forward_reference(x)[0])


def test_bad_places_are_named():
    with pytest.raises(ConfigError, match=r"temporal_pool_after = 3: expected the index of a block, 0..2"):
        ModelConfig(temporal_pool_after=3)
    with pytest.raises(ConfigError, match=r"temporal_pool_after"):
        ModelConfig(temporal_pool_after=-1)
    with pytest.raises(ValueError, match=r"temporal_pool_after must name a block"):
        SpikingFrontEnd(2, (4, 8), temporal_pool_after=2)


def test_records_without_the_field_pool_after_the_first_block():
    from mambaspike.training.run import config_hash, resolved_config

    now = ModelConfig().to_dict()
    older = {k: v for k, v in now.items() if k != "temporal_pool_after"}
    assert ModelConfig.from_dict(older).temporal_pool_after == 0
    train = {"dataset": "ndigits", "epochs": 12}
    assert config_hash(resolved_config(train, older, "v")) == config_hash(resolved_config(train, now, "v"))


def test_nir_export_keeps_to_one_side_of_the_pooling():
    pytest.importorskip("nir")
    from mambaspike.export.nir import frontend_to_nir

    fe = SpikingFrontEnd(2, (4, 8, 8), neuron="lif", temporal_pool=2, temporal_pool_after=1).eval()
    graph, notes = frontend_to_nir(fe, (2, 16, 16))  # default: the blocks before the pooling
    assert {"block0_lif", "block1_lif"} <= set(graph.nodes) and "block2_lif" not in graph.nodes
    assert any("after block 1" in n and "--blocks 2:3" in n for n in notes)
    with pytest.raises(ExportError, match=r"cross the temporal max-pooling over 2 bins after block 1.*--blocks 1:2"):
        frontend_to_nir(fe, (2, 16, 16), blocks=(1, 3))
    graph, _ = frontend_to_nir(fe, (8, 4, 4), blocks=(2, 3))
    assert "block2_lif" in graph.nodes
