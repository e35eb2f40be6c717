"""A ~100M-parameter Llama quantized while it loads: its real footprint, and the memory the load takes
(each weight is quantized as it streams in, so no full fp32 copy is ever resident)."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import pretrained as P

# 107M parameters, 96% of them in the linear layers (tied embeddings stay fp32)
CONFIG = dict(vocab_size=4096, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
              num_key_value_heads=16, tie_word_embeddings=True)

MEASURE = textwrap.dedent("""
    import json, sys
    import bitsandbytes, torch, torchao.quantization  # imported before the baseline is taken
    import pretrained as P

    path, method = sys.argv[1], sys.argv[2]
    if method == "bnb-int8":
        config = P.BitsAndBytesConfig(load_in_8bit=True)
    elif method == "bnb-nf4":
        config = P.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
    else:
        config = P.TorchAoConfig(torchao.quantization.Int8WeightOnlyConfig())

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS: the imports' own peak is not counted
    before = status("VmRSS")
    model = P.LlamaForCausalLM.from_pretrained(path, quantization_config=config)
    print(json.dumps({"footprint": model.get_memory_footprint(), "load_peak": status("VmHWM") - before}))
""")


def _resident(tensor):
    """Bytes of ``tensor``'s pages resident in this process (from /proc/self/smaps)."""
    start = tensor.data_ptr()
    with open("/proc/self/smaps") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= start < high:
                return next(int(entry.split()[1]) * 1024 for entry in lines[i + 1:] if entry.startswith("Rss:"))
    raise AssertionError("tensor not mapped")


def test_release_gives_back_a_mapped_files_pages_and_nothing_else(tmp_path):
    from safetensors.torch import save_file

    from pretrained.loading.checkpoint import find_checkpoint, iter_checkpoint

    weights = {"a": torch.randn(1024, 1024), "b": torch.randn(1024, 1024)}
    save_file(weights, tmp_path / "model.safetensors")
    for lazy in iter_checkpoint(find_checkpoint(tmp_path)):
        tensor = lazy.load()
        assert torch.equal(tensor, weights[lazy.name])  # reads every page
        before = _resident(tensor)  # the mapping is shared by both tensors: count what goes away
        lazy.release(tensor)
        assert before - _resident(tensor) >= 4 * 2**20 - 2 * 4096  # every whole page of the tensor
        assert torch.equal(tensor, weights[lazy.name])  # and read back from the file when touched again
        copy = tensor.clone()
        lazy.release(copy)  # not a view of the file: left alone
        assert torch.equal(copy, weights[lazy.name])


@pytest.fixture(scope="module")
def big_llama(tmp_path_factory):
    torch.manual_seed(0)
    model = P.LlamaForCausalLM(P.LlamaConfig(**CONFIG))
    path = tmp_path_factory.mktemp("llama100m")
    model.save_pretrained(path)
    return path, model.get_memory_footprint()


@pytest.mark.slow  # builds and saves a 430 MB model, then loads it three times in fresh interpreters
@pytest.mark.parametrize("method,share", [("bnb-int8", 0.30), ("bnb-nf4", 0.18), ("torchao-int8", 0.30)])
def test_footprint_and_peak_memory_while_loading(big_llama, method, share):
    path, fp32 = big_llama
    assert 420e6 < fp32 < 440e6
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path), method], capture_output=True, text=True,
                         env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": "",
                              "PYTHONPATH": ":".join(sys.path)})
    assert out.returncode == 0, out.stderr[-3000:]
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{method}: footprint {measured['footprint'] / fp32:.3f} of fp32, load peak "
          f"{measured['load_peak'] / fp32:.3f} of fp32 above the interpreter's")
    assert measured["footprint"] <= share * fp32
    # the RSS the load adds on top of the interpreter with torch and the backends imported
    assert measured["load_peak"] <= 1.2 * fp32
