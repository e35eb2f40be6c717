"""Whisper parity with transformers on tiny random models: full forward, cached decoding, loss."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pretrained import AutoModelForSpeechSeq2Seq, WhisperForConditionalGeneration, WhisperModel  # noqa: E402

TINY = dict(vocab_size=120, num_mel_bins=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, d_model=32,
            max_source_positions=30, max_target_positions=40, pad_token_id=100, bos_token_id=100,
            eos_token_id=100, decoder_start_token_id=101, begin_suppress_tokens=[3, 100])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("whisper")
    model = transformers.WhisperForConditionalGeneration(transformers.WhisperConfig(**TINY)).eval()
    model.save_pretrained(path)
    return model, path


def _features(batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, TINY["num_mel_bins"], 2 * TINY["max_source_positions"], generator=g)


def test_keys_and_forward(saved):
    ref, path = saved
    ours = AutoModelForSpeechSeq2Seq.from_pretrained(path).eval()
    assert isinstance(ours, WhisperForConditionalGeneration)
    assert set(ours.state_dict()) == set(ref.state_dict())
    feats = _features()
    dec = torch.tensor([[101, 5, 6, 7, 8], [101, 9, 10, 11, 12]])
    with torch.no_grad():
        a = ref(input_features=feats, decoder_input_ids=dec).logits
        b = ours(input_features=feats, decoder_input_ids=dec).logits
    torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    labels = dec.clone()
    labels[0, -1] = -100
    with torch.no_grad():
        la = ref(input_features=feats, labels=labels).loss
        lb = ours(input_features=feats, labels=labels).loss
    torch.testing.assert_close(lb, la, atol=1e-5, rtol=1e-5)


def test_encoder_states_are_contiguous(saved):
    # the transposed convolution output, added first, left the states channel-strided through every layer
    # (each LayerNorm then copied its input); the encoder's states stay equal to transformers'
    ref, path = saved
    ours = AutoModelForSpeechSeq2Seq.from_pretrained(path).eval()
    seen = []
    for layer in ours.model.encoder.layers:
        layer.register_forward_pre_hook(lambda module, args: seen.append(args[0].is_contiguous()))
    feats = _features(batch=3)
    with torch.no_grad():
        got = ours.model.encoder(feats).last_hidden_state
        expected = ref.model.encoder(feats).last_hidden_state
    assert seen == [True] * TINY["encoder_layers"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_base_model_and_cached_steps(saved):
    ref, path = saved
    base = WhisperModel.from_pretrained(path).eval()
    feats = _features(1, 2)
    dec = torch.tensor([[101, 5, 6, 7]])
    with torch.no_grad():
        want = ref.model(input_features=feats, decoder_input_ids=dec).last_hidden_state
        got = base(input_features=feats, decoder_input_ids=dec).last_hidden_state
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        ours = WhisperForConditionalGeneration.from_pretrained(path).eval()
        full = ref(input_features=feats, decoder_input_ids=dec).logits
        enc = ours.model.encoder(feats)
        out = ours(encoder_outputs=enc, decoder_input_ids=dec[:, :1], use_cache=True)
        steps = [out.logits[:, -1]]
        for i in range(1, dec.shape[1]):
            out = ours(encoder_outputs=enc, decoder_input_ids=dec[:, i:i + 1], past_key_values=out.past_key_values,
                       use_cache=True)
            steps.append(out.logits[:, -1])
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-4, rtol=1e-4)


def test_wrong_feature_length_is_a_clear_error(saved):
    _, path = saved
    ours = WhisperForConditionalGeneration.from_pretrained(path).eval()
    with pytest.raises(ValueError, match="input_features"):
        ours(input_features=torch.zeros(1, TINY["num_mel_bins"], 10), decoder_input_ids=torch.tensor([[101]]))


def test_save_round_trip_and_tied_head(saved, tmp_path):
    ref, path = saved
    ours = WhisperForConditionalGeneration.from_pretrained(path).eval()
    assert ours.proj_out.weight.data_ptr() == ours.model.decoder.embed_tokens.weight.data_ptr()
    ours.save_pretrained(tmp_path)
    again = transformers.WhisperForConditionalGeneration.from_pretrained(tmp_path).eval()
    feats = _features(1, 4)
    dec = torch.tensor([[101, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(again(input_features=feats, decoder_input_ids=dec).logits,
                                   ref(input_features=feats, decoder_input_ids=dec).logits, atol=1e-5, rtol=1e-5)


def test_decoder_position_ids_and_mask(saved):
    ref, path = saved
    ours = WhisperForConditionalGeneration.from_pretrained(path).eval()
    feats = _features(2, 5)
    dec = torch.tensor([[100, 100, 101, 5, 6], [101, 7, 8, 9, 10]])
    mask = (dec != 100).long()
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    kwargs = dict(input_features=feats, decoder_input_ids=dec, decoder_attention_mask=mask,
                  decoder_position_ids=positions)
    with torch.no_grad():
        torch.testing.assert_close(ours(**kwargs).logits[:, 2:], ref(**kwargs).logits[:, 2:], atol=1e-4, rtol=1e-4)
