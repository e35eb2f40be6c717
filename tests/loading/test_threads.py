"""Loading patches nothing process-wide: two loads overlap in two threads while a third builds a layer."""

import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

import pretrained as P
from pretrained.modeling.base import init_standard_

TIMEOUT = 60
# Set by the test: every GateModel being built waits here, mid-construction, for the others.
GATE: dict = {"barrier": None, "release": None}


class GateConfig(P.PretrainedConfig):
    model_type = "gate-test"

    def __init__(self, width: int = 8, **kwargs):
        self.width = width
        super().__init__(**kwargs)


class GateModel(P.PreTrainedModel):
    config_class = GateConfig

    def __init__(self, config):
        super().__init__(config)
        self.first = nn.Linear(config.width, config.width)
        if GATE["barrier"] is not None:
            GATE["barrier"].wait()  # both loads are now building, and the bystander thread is running
            assert GATE["release"].wait(TIMEOUT), "the bystander thread never finished"
        self.second = nn.Linear(config.width, 2)  # registered after the other load has started too
        self.norm = nn.LayerNorm(2)
        self.post_init()

    def _init_weights(self, module):
        init_standard_(module, 0.02)


class WideGateModel(GateModel):
    """A second architecture: one more layer, so the two loads build different modules."""

    def __init__(self, config):
        super().__init__(config)
        self.extra = nn.Linear(2, 3)
        self.post_init()


def _bystander() -> dict:
    """What a thread that is not loading sees while both loads are mid-construction."""
    GATE["barrier"].wait()
    try:
        layer = nn.Linear(64, 64)
        return {"device": layer.weight.device.type, "std": layer.weight.std().item(),
                "bias_nonzero": bool(layer.bias.abs().sum() > 0), "default_dtype": torch.get_default_dtype(),
                "modes": torch._C._len_torch_function_stack(), "dtype": layer.weight.dtype}
    finally:
        GATE["release"].set()


def test_two_loads_and_a_bystander_overlap(tmp_path):
    torch.manual_seed(0)
    saved = {}
    for cls, width in ((GateModel, 8), (WideGateModel, 16)):
        model = cls(GateConfig(width=width))
        model.save_pretrained(tmp_path / cls.__name__)
        saved[cls] = {k: v.clone() for k, v in model.state_dict().items()}

    GATE.update(barrier=threading.Barrier(3, timeout=TIMEOUT), release=threading.Event())
    try:
        with ThreadPoolExecutor(3) as pool:
            half = pool.submit(GateModel.from_pretrained, tmp_path / "GateModel", dtype=torch.float16)
            bf16 = pool.submit(WideGateModel.from_pretrained, tmp_path / "WideGateModel",
                               dtype=torch.bfloat16)
            seen = pool.submit(_bystander).result(TIMEOUT)
            models = {GateModel: half.result(TIMEOUT), WideGateModel: bf16.result(TIMEOUT)}
    finally:
        GATE.update(barrier=None, release=None)

    # the bystander's layer is real, initialised, in its own thread's default dtype, untouched by modes
    assert seen["device"] == "cpu" and seen["dtype"] == seen["default_dtype"] == torch.float32
    assert seen["std"] > 0.01 and seen["bias_nonzero"] and seen["modes"] == 0
    # both loads got their own weights, in their own dtypes
    for cls, dtype in ((GateModel, torch.float16), (WideGateModel, torch.bfloat16)):
        model = models[cls]
        assert type(model) is cls and model.dtype == dtype
        assert not any(p.is_meta for p in model.parameters())
        state = model.state_dict()
        assert state.keys() == saved[cls].keys()
        for name, tensor in saved[cls].items():
            torch.testing.assert_close(state[name], tensor.to(dtype), msg=name)
    assert torch.get_default_dtype() == torch.float32


def test_building_leaves_torch_as_it_was(tmp_path):
    """No function of torch is replaced during a load, and the default dtype never changes."""
    torch.manual_seed(0)
    GateModel(GateConfig()).save_pretrained(tmp_path)
    originals = {"register_parameter": nn.Module.register_parameter, "normal_": nn.init.normal_,
                 "kaiming_uniform_": nn.init.kaiming_uniform_}
    seen = {}

    class Spy(GateModel):
        def __init__(self, config):
            seen.update(register_parameter=nn.Module.register_parameter, normal_=nn.init.normal_,
                        kaiming_uniform_=nn.init.kaiming_uniform_, dtype=torch.get_default_dtype())
            super().__init__(config)

    Spy.from_pretrained(tmp_path, dtype=torch.float16)
    assert seen == {**originals, "dtype": torch.float32}


def test_models_built_outside_a_load_are_initialised():
    """Outside a load, post_init initialises; from_config builds parameters in the asked dtype."""
    model = GateModel(GateConfig())
    assert model.first.weight.std().item() > 0.005 and model.norm.weight.eq(1).all()
    half = GateModel.from_config(GateConfig(), dtype="float16")
    assert {p.dtype for p in half.parameters()} == {torch.float16}
    assert half.first.weight.std().item() > 0.005 and torch.get_default_dtype() == torch.float32
