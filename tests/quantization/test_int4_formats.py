"""GPTQ / AWQ packed formats: our packers against independent word-by-word packers written from the
formats' descriptions, exact round trips, the v1 zero-point convention, RTN quantization, bad inputs."""

import pytest
import torch

from pretrained.quantizers import int4_formats as F


def reference_pack_gptq_v1(intweight, zeros, bits=4):
    """GPTQ v1 words built one field at a time: qweight packs 32/bits consecutive input features of one
    output per int32 (lowest bits first); qzeros packs outputs the same way after a whole-word subtraction
    of 0x11111111 (4-bit), wrapping in int32."""
    per = 32 // bits
    out_f, in_f = intweight.shape
    qweight = [[0] * out_f for _ in range(in_f // per)]
    for n in range(out_f):
        for k in range(in_f):
            qweight[k // per][n] |= int(intweight[n, k]) << (bits * (k % per))
    groups = zeros.shape[0]
    qzeros = [[0] * (out_f // per) for _ in range(groups)]
    one = sum(1 << (bits * j) for j in range(per))
    for g in range(groups):
        for n in range(out_f):
            qzeros[g][n // per] |= int(zeros[g, n]) << (bits * (n % per))
        qzeros[g] = [(w - one) % (1 << 32) for w in qzeros[g]]
    signed = lambda w: w - (1 << 32) if w >= 1 << 31 else w  # noqa: E731
    return (torch.tensor([[signed(w) for w in row] for row in qweight], dtype=torch.int32),
            torch.tensor([[signed(w) for w in row] for row in qzeros], dtype=torch.int32))  # fmt: skip


def reference_pack_awq(intweight, zeros):
    """AWQ words: 8 consecutive outputs of one input feature per int32, output 8c + [0,2,4,6,1,3,5,7][i] in
    nibble i."""
    order = [0, 2, 4, 6, 1, 3, 5, 7]

    def pack_rows(m):  # m: (rows, out)
        rows, out_f = m.shape
        words = []
        for r in range(rows):
            row = []
            for c in range(out_f // 8):
                w = 0
                for i in range(8):
                    w |= int(m[r, 8 * c + order[i]]) << (4 * i)
                row.append(w - (1 << 32) if w >= 1 << 31 else w)
            words.append(row)
        return torch.tensor(words, dtype=torch.int32)

    return pack_rows(intweight.t()), pack_rows(zeros)


def random_ints(out_f, in_f, groups, bits=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    intweight = torch.randint(0, 1 << bits, (out_f, in_f), generator=g, dtype=torch.int32)
    zeros = torch.randint(0, 1 << bits, (groups, out_f), generator=g, dtype=torch.int32)
    zeros[0, :8] = 0  # zero points of 0 make the v1 subtraction borrow across fields
    zeros[-1, -8:] = (1 << bits) - 1
    scales = (torch.rand(groups, out_f, generator=g) * 0.02 + 0.001).half()
    return intweight, zeros, scales


@pytest.mark.parametrize("desc_act", [False, True])
def test_gptq_pack_matches_reference_and_round_trips(desc_act):
    out_f, in_f, gs = 24, 256, 64
    intweight, zeros, scales = random_ints(out_f, in_f, in_f // gs)
    perm = torch.randperm(in_f, generator=torch.Generator().manual_seed(1)) if desc_act else torch.arange(in_f)
    g_idx = F.act_order_g_idx(perm, gs)
    packed = F.pack_gptq(intweight, zeros, scales, g_idx, bits=4)
    ref_qweight, ref_qzeros = reference_pack_gptq_v1(intweight, zeros)
    assert packed["qweight"].dtype == packed["qzeros"].dtype == packed["g_idx"].dtype == torch.int32
    assert packed["qweight"].shape == (in_f // 8, out_f) and packed["qzeros"].shape == (in_f // gs, out_f // 8)
    assert torch.equal(packed["qweight"], ref_qweight)
    assert torch.equal(packed["qzeros"], ref_qzeros)
    back_w, back_z = F.unpack_gptq_ints(packed["qweight"], packed["qzeros"])
    assert torch.equal(back_w, intweight) and torch.equal(back_z, zeros)
    weight = F.unpack_gptq(packed["qweight"], packed["qzeros"], packed["scales"], packed["g_idx"])
    expected = (intweight.float() - zeros[g_idx.long()].t().float()) * scales[g_idx.long()].t().float()
    assert torch.equal(weight, expected)


def test_gptq_v1_symmetric_zeros_are_the_familiar_words():
    # symmetric 4-bit: every zero is 8, stored as 7 in each nibble
    intweight, _, scales = random_ints(16, 32, 1)
    packed = F.pack_gptq(intweight, torch.full((1, 16), 8, dtype=torch.int32), scales, F.default_g_idx(32, -1))
    assert torch.all(packed["qzeros"] == 0x77777777)
    v2 = F.pack_gptq(intweight, torch.full((1, 16), 8, dtype=torch.int32), scales, F.default_g_idx(32, -1),
                     format="gptq_v2")  # fmt: skip
    assert torch.all(v2["qzeros"] == -0x77777778)  # 0x88888888 as int32


@pytest.mark.parametrize("bits", [2, 8])
def test_gptq_other_bit_widths_round_trip(bits):
    intweight, zeros, scales = random_ints(32, 64, 2, bits=bits)
    g_idx = F.default_g_idx(64, 32)
    packed = F.pack_gptq(intweight, zeros, scales, g_idx, bits=bits)
    assert packed["qweight"].shape == (64 * bits // 32, 32)
    back_w, back_z = F.unpack_gptq_ints(packed["qweight"], packed["qzeros"], bits=bits)
    assert torch.equal(back_w, intweight) and torch.equal(back_z, zeros)


def test_awq_pack_matches_reference_and_round_trips():
    out_f, in_f, gs = 32, 256, 128
    intweight, zeros, scales = random_ints(out_f, in_f, in_f // gs)
    packed = F.pack_awq(intweight, zeros, scales)
    ref_qweight, ref_qzeros = reference_pack_awq(intweight, zeros)
    assert packed["qweight"].shape == (in_f, out_f // 8)
    assert torch.equal(packed["qweight"], ref_qweight) and torch.equal(packed["qzeros"], ref_qzeros)
    back_w, back_z = F.unpack_awq_ints(packed["qweight"], packed["qzeros"])
    assert torch.equal(back_w, intweight) and torch.equal(back_z, zeros)
    weight = F.unpack_awq(packed["qweight"], packed["qzeros"], packed["scales"], group_size=gs)
    g = torch.arange(in_f) // gs
    assert torch.equal(weight, (intweight.float() - zeros[g].t().float()) * scales[g].t().float())


@pytest.mark.parametrize("sym", [True, False])
@pytest.mark.parametrize("desc_act", [False, True])
def test_rtn_grid_and_error(sym, desc_act):
    torch.manual_seed(0)
    weight = torch.randn(16, 256) * 0.05
    perm = torch.randperm(256) if desc_act else None
    intweight, zeros, scales, g_idx = F.quantize_rtn(weight, 4, 128, sym, perm)
    assert intweight.shape == (16, 256) and zeros.shape == scales.shape == (2, 16) and scales.dtype == torch.float16
    assert int(intweight.min()) >= 0 and int(intweight.max()) <= 15
    if sym:
        assert torch.all(zeros == 8)
    if desc_act:
        assert torch.equal(g_idx[perm], torch.arange(256, dtype=torch.int32) // 128)
    else:
        assert torch.equal(g_idx, torch.arange(256, dtype=torch.int32) // 128)
    deq = (intweight.float() - zeros[g_idx.long()].t().float()) * scales[g_idx.long()].t().float()
    # round to nearest: at most half a step off (a little more where a symmetric grid clips its top)
    step = scales[g_idx.long()].t().float()
    assert torch.all((deq - weight).abs() <= step * (1.0 if sym else 0.5) + 1e-6)


def test_rtn_all_zero_group():
    intweight, zeros, scales, _ = F.quantize_rtn(torch.zeros(8, 128), 4, 128, False)
    deq = (intweight.float() - zeros.t().float()) * scales.t().float()
    assert torch.all(deq == 0)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="bits=3"):
        F.pack_gptq(torch.zeros(8, 32, dtype=torch.int32), torch.zeros(1, 8, dtype=torch.int32),
                    torch.ones(1, 8), torch.zeros(32, dtype=torch.int32), bits=3)  # fmt: skip
    with pytest.raises(ValueError, match="intweight"):
        F.pack_gptq(torch.full((8, 32), 16, dtype=torch.int32), torch.zeros(1, 8, dtype=torch.int32),
                    torch.ones(1, 8), torch.zeros(32, dtype=torch.int32))  # fmt: skip
    with pytest.raises(ValueError, match="g_idx"):
        F.pack_gptq(torch.zeros(8, 32, dtype=torch.int32), torch.zeros(1, 8, dtype=torch.int32),
                    torch.ones(1, 8), torch.zeros(31, dtype=torch.int32))  # fmt: skip
    with pytest.raises(ValueError, match="divisible by group_size"):
        F.quantize_rtn(torch.zeros(8, 100), 4, 64, True)
    with pytest.raises(ValueError, match="out_features"):
        F.pack_awq(torch.zeros(12, 32, dtype=torch.int32), torch.zeros(1, 12, dtype=torch.int32), torch.ones(1, 12))
    with pytest.raises(ValueError, match="format"):
        F.unpack_gptq_ints(torch.zeros(4, 8, dtype=torch.int32), torch.zeros(1, 1, dtype=torch.int32), format="v3")
