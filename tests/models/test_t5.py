"""T5, T5 v1.1, mT5 and UMT5 against transformers on tiny random models (fp32)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

transformers = pytest.importorskip("transformers")

import pretrained  # noqa: E402
from pretrained import AutoModel, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification  # noqa: E402
from pretrained.modeling.cache import DynamicCache, EncoderDecoderCache, StaticCache  # noqa: E402

TINY = dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=3, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=20, decoder_start_token_id=0)
VARIANTS = {
    "t5": ("T5", {}),
    "t5-v1_1": ("T5", {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}),
    "mt5": ("MT5", {}),
    "umt5": ("UMT5", {}),
}


def _config(prefix: str, extra: dict, **more):
    return getattr(transformers, f"{prefix}Config")(**TINY, **extra, **more)


@pytest.fixture(scope="module", params=list(VARIANTS))
def checkpoint(request, tmp_path_factory):
    prefix, extra = VARIANTS[request.param]
    torch.manual_seed(0)
    hf = getattr(transformers, f"{prefix}ForConditionalGeneration")(_config(prefix, extra)).eval()
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    return prefix, hf, folder


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, TINY["vocab_size"], (2, 11), generator=g)
    ids[:, -1] = 1  # </s>
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding in the second row
    labels = torch.randint(2, TINY["vocab_size"], (2, 7), generator=g)
    labels[1, -2:] = -100
    return ids, mask, labels


def test_forward_loss_and_auto_class(checkpoint):
    prefix, hf, folder = checkpoint
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    assert type(model).__name__ == f"{prefix}ForConditionalGeneration"
    assert model.encoder.embed_tokens.weight is model.shared.weight
    ids, mask, labels = _batch()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, labels=labels)
        got = model(input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.loss, want.loss, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.encoder_last_hidden_state, want.encoder_last_hidden_state, atol=1e-4, rtol=0)
    assert set(got.keys()) == {"loss", "logits", "past_key_values", "encoder_last_hidden_state"}


def test_hidden_states_and_attentions(checkpoint):
    prefix, _, folder = checkpoint
    hf = getattr(transformers, f"{prefix}ForConditionalGeneration").from_pretrained(
        folder, attn_implementation="eager").eval()
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, attn_implementation="eager")
    ids, mask, labels = _batch()
    kw = dict(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True, output_attentions=True)
    with torch.no_grad():
        want, got = hf(**kw), model(**kw)
    for name in ("encoder_hidden_states", "decoder_hidden_states", "encoder_attentions", "decoder_attentions",
                 "cross_attentions"):
        assert len(got[name]) == len(want[name]), name
        for a, b in zip(got[name], want[name]):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0, msg=name)


@pytest.mark.parametrize("static", [False, True])
def test_cached_step_by_step_decoding(checkpoint, static):
    _, hf, folder = checkpoint
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    ids, mask, labels = _batch()
    decoder_ids = model.prepare_decoder_input_ids_from_labels(labels)
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
        encoded = model.get_encoder()(input_ids=ids, attention_mask=mask)
        shape = SimpleNamespace(num_hidden_layers=TINY["num_decoder_layers"], num_attention_heads=4, head_dim=8)
        own = StaticCache(shape, max_cache_len=12) if static else DynamicCache()
        cache = EncoderDecoderCache(own, DynamicCache())
        # a two-token prefill, then one token per step
        out = model(encoder_outputs=encoded, attention_mask=mask, decoder_input_ids=decoder_ids[:, :2],
                    past_key_values=cache, use_cache=True)
        steps = [out.logits]
        for t in range(2, decoder_ids.shape[1]):
            out = model(encoder_outputs=encoded, attention_mask=mask, decoder_input_ids=decoder_ids[:, t:t + 1],
                        past_key_values=out.past_key_values, use_cache=True)
            steps.append(out.logits)
    assert all(cache.is_updated[i] for i in range(TINY["num_decoder_layers"]))
    torch.testing.assert_close(torch.cat(steps, 1), want, atol=1e-4, rtol=0)


def test_reference_cache_steps_match(checkpoint):
    """transformers' own cached decoding gives the same logits as ours step by step."""
    _, hf, folder = checkpoint
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    ids, mask, labels = _batch()
    decoder_ids = model.prepare_decoder_input_ids_from_labels(labels)
    with torch.no_grad():
        ours, theirs = None, None
        for t in range(decoder_ids.shape[1]):
            step = decoder_ids[:, t:t + 1]
            ours = model(input_ids=ids, attention_mask=mask, decoder_input_ids=step, use_cache=True,
                         past_key_values=ours.past_key_values if ours is not None else None)
            theirs = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=step, use_cache=True,
                        past_key_values=theirs.past_key_values if theirs is not None else None)
            torch.testing.assert_close(ours.logits, theirs.logits, atol=1e-4, rtol=0)


def test_encoder_model_and_bare_model(checkpoint):
    prefix, _, folder = checkpoint
    ids, mask, labels = _batch()
    encoder = getattr(pretrained, f"{prefix}EncoderModel").from_pretrained(folder)
    ref_encoder = getattr(transformers, f"{prefix}EncoderModel").from_pretrained(folder).eval()
    bare = AutoModel.from_pretrained(folder)
    assert type(bare).__name__ == f"{prefix}Model"
    decoder_ids = bare.prepare_decoder_input_ids_from_labels(labels)
    with torch.no_grad():
        torch.testing.assert_close(encoder(ids, attention_mask=mask).last_hidden_state,
                                   ref_encoder(ids, attention_mask=mask).last_hidden_state, atol=1e-4, rtol=0)
        ref_bare = getattr(transformers, f"{prefix}Model").from_pretrained(folder).eval()
        torch.testing.assert_close(
            bare(ids, attention_mask=mask, decoder_input_ids=decoder_ids).last_hidden_state,
            ref_bare(ids, attention_mask=mask, decoder_input_ids=decoder_ids).last_hidden_state, atol=1e-4, rtol=0)


@pytest.mark.parametrize("variant", ["t5", "umt5"])
def test_sequence_classification(tmp_path, variant):
    prefix, extra = VARIANTS[variant]
    torch.manual_seed(0)
    cls = getattr(transformers, f"{prefix}ForSequenceClassification")
    hf = cls(_config(prefix, extra, num_labels=3)).eval()
    hf.save_pretrained(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert type(model).__name__ == f"{prefix}ForSequenceClassification"
    ids, mask, _ = _batch()
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        want = hf(ids, attention_mask=mask, labels=labels)
        got = model(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.loss, want.loss, atol=1e-5, rtol=0)
    ids[0, 4] = 1  # one more </s> in the first row only
    with pytest.raises(ValueError, match="same number of <eos>"):
        model(ids)


def test_untied_checkpoint_and_round_trip(tmp_path):
    """A flan-T5 style folder (tie_word_embeddings false, its own lm_head.weight) loads untied and unscaled;
    our save loads back in transformers with the same logits."""
    torch.manual_seed(0)
    ours = pretrained.T5ForConditionalGeneration(
        pretrained.T5Config(**TINY, feed_forward_proj="gated-gelu", tie_word_embeddings=False)).eval()
    assert ours.lm_head.weight is not ours.shared.weight and not ours.config.scale_decoder_outputs
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "t5" and saved["feed_forward_proj"] == "gated-gelu"
    ref = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    again = pretrained.T5ForConditionalGeneration.from_pretrained(tmp_path)
    ids, mask, labels = _batch()
    with torch.no_grad():
        want = ours(ids, attention_mask=mask, labels=labels).logits
        torch.testing.assert_close(ref(ids, attention_mask=mask, labels=labels).logits, want, atol=1e-4, rtol=0)
        torch.testing.assert_close(again(ids, attention_mask=mask, labels=labels).logits, want, atol=0, rtol=0)


def test_config_files_match_transformers():
    for prefix in ("T5", "MT5", "UMT5"):
        ours = getattr(pretrained, f"{prefix}Config")(**TINY).to_dict()
        theirs = getattr(transformers, f"{prefix}Config")(**TINY).to_dict()
        ours.pop("transformers_version"), theirs.pop("transformers_version")
        assert ours == theirs, prefix


def test_config_defaults_and_errors():
    for prefix in ("T5", "MT5", "UMT5"):
        ref = getattr(transformers, f"{prefix}Config")()
        ours = getattr(pretrained, f"{prefix}Config")()
        for key in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                    "feed_forward_proj", "dense_act_fn", "is_gated_act", "pad_token_id", "eos_token_id",
                    "is_encoder_decoder", "relative_attention_num_buckets", "hidden_size", "num_attention_heads"):
            assert getattr(ours, key) == getattr(ref, key), (prefix, key)
    with pytest.raises(ValueError, match="feed_forward_proj"):
        pretrained.T5Config(feed_forward_proj="gelu-gated")
    model = pretrained.T5ForConditionalGeneration(pretrained.T5Config(
        **{k: v for k, v in TINY.items() if k != "decoder_start_token_id"}))
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        model(input_ids=torch.tensor([[5, 1]]), labels=torch.tensor([[5, 1]]))


def test_training_step_matches(checkpoint):
    """Dropout off, one optimizer step: the same loss and the same updated weights as transformers."""
    prefix, _, folder = checkpoint
    ref = getattr(transformers, f"{prefix}ForConditionalGeneration").from_pretrained(folder, dropout_rate=0.0)
    ours = AutoModelForSeq2SeqLM.from_pretrained(folder, dropout_rate=0.0)
    ids, mask, labels = _batch()
    for model in (ref, ours):
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        opt.step()
    torch.testing.assert_close(ours.shared.weight, ref.shared.weight, atol=1e-5, rtol=0)
    name = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    torch.testing.assert_close(ours.get_parameter(name), ref.get_parameter(name), atol=1e-5, rtol=0)


def test_transformers_module_paths():
    from pretrained.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
    from pretrained.models.mt5.modeling_mt5 import MT5ForConditionalGeneration
    from pretrained.models.t5.modeling_t5 import T5EncoderModel

    assert T5EncoderModel is pretrained.T5EncoderModel
    assert MT5ForConditionalGeneration is pretrained.MT5ForConditionalGeneration
    assert MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES["umt5"] == "UMT5ForConditionalGeneration"


@pytest.mark.parametrize("variant", ["t5", "mt5"])
def test_token_classification_and_question_answering(tmp_path, variant):
    prefix, extra = VARIANTS[variant]
    ids, mask, _ = _batch()
    for head in ("ForTokenClassification", "ForQuestionAnswering"):
        torch.manual_seed(0)
        hf = getattr(transformers, f"{prefix}{head}")(_config(prefix, extra, num_labels=2)).eval()
        hf.save_pretrained(tmp_path / head)
        model = getattr(pretrained, f"{prefix}{head}").from_pretrained(tmp_path / head)
        if head == "ForTokenClassification":
            kw = {"labels": torch.randint(0, 2, ids.shape).masked_fill(mask == 0, -100)}
            names = ("logits", "loss")
        else:
            kw = {"start_positions": torch.tensor([2, 30]), "end_positions": torch.tensor([4, 6])}
            names = ("start_logits", "end_logits", "loss")
        with torch.no_grad():
            want, got = hf(ids, attention_mask=mask, **kw), model(ids, attention_mask=mask, **kw)
        for name in names:
            torch.testing.assert_close(got[name], want[name], atol=1e-4, rtol=0, msg=f"{head} {name}")


def test_every_class_builds_initialises_and_runs():
    ids, mask, labels = _batch()
    for prefix in ("T5", "MT5", "UMT5"):
        config = getattr(pretrained, f"{prefix}Config")(**TINY, num_labels=2)
        for head in ("Model", "ForConditionalGeneration", "EncoderModel", "ForSequenceClassification",
                     "ForTokenClassification", "ForQuestionAnswering"):
            model = getattr(pretrained, f"{prefix}{head}")(config)
            assert model.get_input_embeddings().weight.std() > 0.5  # shared table ~ N(0, 1)
            kw = {"labels": labels} if head == "ForConditionalGeneration" else {}
            if head == "Model":
                kw = {"decoder_input_ids": model.prepare_decoder_input_ids_from_labels(labels)}
            out = model(ids, attention_mask=mask, **kw)
            assert all(torch.isfinite(v).all() for v in out.values() if isinstance(v, torch.Tensor)), head


def test_gradient_checkpointing_gives_the_same_gradients(checkpoint):
    _, _, folder = checkpoint
    ids, mask, labels = _batch()
    grads = []
    for flag in (False, True):
        model = AutoModelForSeq2SeqLM.from_pretrained(folder, dropout_rate=0.0)
        model.train()
        if flag:
            model.gradient_checkpointing_enable()
            assert model.is_gradient_checkpointing
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision_keeps_wo_as_transformers(checkpoint, dtype):
    """``wo`` stays float32 in float16 loads only (transformers' _keep_in_fp32_modules); the layer norms
    bring the float32 residual back to half."""
    prefix, _, folder = checkpoint
    ref = getattr(transformers, f"{prefix}ForConditionalGeneration").from_pretrained(folder, dtype=dtype).eval()
    ours = AutoModelForSeq2SeqLM.from_pretrained(folder, dtype=dtype)
    wo = "encoder.block.0.layer.1.DenseReluDense.wo.weight"
    assert ours.get_parameter(wo).dtype == ref.get_parameter(wo).dtype
    assert ours.get_parameter(wo).dtype == (torch.float32 if dtype == torch.float16 else dtype)
    ids, mask, labels = _batch()
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, labels=labels).logits
        got = ours(input_ids=ids, attention_mask=mask, labels=labels).logits
    assert got.dtype == want.dtype == dtype
    torch.testing.assert_close(got.float(), want.float(), atol=1e-2, rtol=0)


@pytest.mark.parametrize("tie", [True, False])
def test_resize_token_embeddings_keeps_the_stacks_on_the_shared_table(tie):
    model = pretrained.T5ForConditionalGeneration(pretrained.T5Config(**TINY, tie_word_embeddings=tie))
    old = model.shared.weight.detach().clone()
    model.resize_token_embeddings(120)
    assert model.shared.weight.shape == (120, 32) and model.lm_head.weight.shape == (120, 32)
    assert model.encoder.embed_tokens.weight is model.shared.weight is model.decoder.embed_tokens.weight
    assert (model.lm_head.weight is model.shared.weight) == tie
    torch.testing.assert_close(model.shared.weight[:99], old)
    assert model(input_ids=torch.tensor([[110, 1]]), labels=torch.tensor([[115, 1]])).logits.shape == (1, 2, 120)


def test_resize_token_embeddings_of_other_families():
    # (the base class initialises the new rows without autograd for every family)
    for model in (pretrained.BertForMaskedLM(pretrained.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1,
                                                                   num_attention_heads=2, intermediate_size=37)),
                  pretrained.GPT2LMHeadModel(pretrained.GPT2Config(vocab_size=99, n_embd=32, n_layer=1, n_head=2))):
        assert model.resize_token_embeddings(120).weight.shape[0] == 120


def test_decode_step_traces_as_one_graph_with_a_static_cache(checkpoint):
    """A decoder step over a static self-attention cache compiles without graph breaks (dynamo, eager
    backend) and gives the full forward's logits."""
    prefix, hf, folder = checkpoint
    if prefix == "MT5":
        pytest.skip("same graph as T5 v1.1")
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    ids, mask, labels = _batch()
    decoder_ids = model.prepare_decoder_input_ids_from_labels(labels)
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
        encoded = model.get_encoder()(input_ids=ids, attention_mask=mask)
        shape = SimpleNamespace(num_hidden_layers=TINY["num_decoder_layers"], num_attention_heads=4, head_dim=8)
        cache = EncoderDecoderCache(StaticCache(shape, max_cache_len=10, max_batch_size=2), DynamicCache())
        first = model(encoder_outputs=encoded, attention_mask=mask, decoder_input_ids=decoder_ids[:, :1],
                      past_key_values=cache, cache_position=torch.tensor([0])).logits

        def step(token, position):
            return model(encoder_outputs=encoded, attention_mask=mask, decoder_input_ids=token,
                         past_key_values=cache, cache_position=position).logits

        compiled = torch.compile(step, backend="eager", fullgraph=True)
        steps = [first] + [compiled(decoder_ids[:, t:t + 1], torch.tensor([t])) for t in range(1, 4)]
    torch.testing.assert_close(torch.cat(steps, 1), want[:, :4], atol=1e-4, rtol=0)
