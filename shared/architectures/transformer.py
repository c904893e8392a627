"""Transformer builders over keras-hub layers.

* `TransformerEncoderClassifier`: token ids -> encoder stack -> masked mean pool -> classes.
* `TransformerDecoderLM`: decoder-only causal language model -> per-token vocab logits.
* `TransformerSeq2Seq`: encoder-decoder with cross-attention -> per-token vocab logits.

Token id 0 is padding everywhere: it is masked out of attention (keys) and pooling, so
appending padding never changes the outputs at real positions. Sequences may be shorter
than `sequence_length` (the position-embedding table size).
"""

import keras
import keras_hub

from shared.architectures import register
from shared.architectures.base import ArgsConfig, weighted_mean
from shared.architectures.cnn import check_activation


def _check_common(vocabulary_size, sequence_length, num_layers, num_heads, hidden_dim,
                  intermediate_dim, dropout):
    for arg, value in dict(vocabulary_size=vocabulary_size, sequence_length=sequence_length,
                           num_layers=num_layers, num_heads=num_heads, hidden_dim=hidden_dim,
                           intermediate_dim=intermediate_dim).items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{arg}` must be a positive int. Received: {arg}={value}")
    if hidden_dim % num_heads:
        raise ValueError(
            "`hidden_dim` must be divisible by `num_heads`. Received: "
            f"hidden_dim={hidden_dim}, num_heads={num_heads}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")


def apply_token_embedding(token_ids, vocabulary_size, sequence_length, hidden_dim, name):
    """Token + learned position embedding. Returns `(embeddings, padding_mask)`:
    `(batch, steps, hidden_dim)` and a bool `(batch, steps)` mask that is False at id 0."""
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size, sequence_length, hidden_dim, name=f"{name}_embedding"
    )(token_ids)
    padding_mask = keras.ops.not_equal(token_ids, 0)
    return x, padding_mask


def apply_encoder_stack(x, padding_mask, num_layers, num_heads, intermediate_dim, dropout, name):
    """`num_layers` keras-hub `TransformerEncoder` blocks. `(batch, steps, d)` -> same."""
    for i in range(num_layers):
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim, num_heads, dropout=dropout, name=f"{name}_layer{i}"
        )(x, padding_mask=padding_mask)
    return x


def apply_decoder_stack(x, padding_mask, num_layers, num_heads, intermediate_dim, dropout, name,
                        encoder_sequence=None, encoder_padding_mask=None):
    """`num_layers` causal keras-hub `TransformerDecoder` blocks (with cross-attention
    when `encoder_sequence` is given). `(batch, steps, d)` -> same."""
    for i in range(num_layers):
        x = keras_hub.layers.TransformerDecoder(
            intermediate_dim, num_heads, dropout=dropout, name=f"{name}_layer{i}"
        )(
            x,
            encoder_sequence=encoder_sequence,
            decoder_padding_mask=padding_mask,
            encoder_padding_mask=encoder_padding_mask,
            use_causal_mask=True,
        )
    return x




@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "transformer_classifier",
    variants={
        "transformer_classifier_tiny": dict(
            vocabulary_size=5000, sequence_length=128, num_layers=1, num_heads=2,
            hidden_dim=32, intermediate_dim=64, dropout=0.1, num_classes=2,
        ),
        "transformer_classifier_small": dict(
            vocabulary_size=20000, sequence_length=256, num_layers=2, num_heads=4,
            hidden_dim=128, intermediate_dim=256, dropout=0.1, num_classes=2,
        ),
    },
)
class TransformerEncoderClassifier(ArgsConfig, keras.Model):
    """Encoder-only classifier: token ids `(batch, steps)` int, 0 = padding, steps <=
    `sequence_length` -> token+position embedding -> `num_layers` encoder blocks ->
    mean over non-padding steps -> dropout -> `Dense(num_classes, head_activation)` (float32).

    Output shape: `(batch, num_classes)` (probabilities with the default softmax head;
    `head_activation="linear"` for regression).
    """

    _ARGS = ("vocabulary_size", "sequence_length", "num_layers", "num_heads", "hidden_dim",
             "intermediate_dim", "dropout", "num_classes", "head_activation")

    def __init__(self, vocabulary_size=20000, sequence_length=256, num_layers=2, num_heads=4,
                 hidden_dim=128, intermediate_dim=256, dropout=0.1, num_classes=2,
                 head_activation="softmax", name=None, **kwargs):
        _check_common(vocabulary_size, sequence_length, num_layers, num_heads, hidden_dim,
                      intermediate_dim, dropout)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"`num_classes` must be >= 1. Received: num_classes={num_classes}")
        check_activation(head_activation, "head_activation")
        p = "encoder_classifier"
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x, mask = apply_token_embedding(token_ids, vocabulary_size, sequence_length, hidden_dim, p)
        x = keras.layers.Dropout(dropout, name=f"{p}_embedding_dropout")(x)
        x = apply_encoder_stack(x, mask, num_layers, num_heads, intermediate_dim, dropout, f"{p}_encoder")
        # Mean over the non-padding steps; an all-padding row (an empty text) pools to zeros,
        # where GlobalAveragePooling1D(mask=…) would divide 0 by 0 (NaN loss, measured).
        x = weighted_mean(x, keras.ops.expand_dims(mask, -1))
        x = keras.layers.Dropout(dropout, name=f"{p}_head_dropout")(x)
        outputs = keras.layers.Dense(num_classes, activation=head_activation, dtype="float32",
                                     name=f"{p}_head")(x)
        super().__init__(inputs=token_ids, outputs=outputs, name=name, **kwargs)
        for arg in self._ARGS:
            setattr(self, arg, locals()[arg])


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "transformer_lm",
    variants={
        "transformer_lm_tiny": dict(
            vocabulary_size=5000, sequence_length=128, num_layers=2, num_heads=2,
            hidden_dim=64, intermediate_dim=128, dropout=0.1,
        ),
        "transformer_lm_mini": dict(  # byte-level GPT sized for a CPU (`dl-nlp train generate`)
            vocabulary_size=257, sequence_length=256, num_layers=4, num_heads=4,
            hidden_dim=128, intermediate_dim=512, dropout=0.1,
        ),
        "transformer_lm_small": dict(
            vocabulary_size=16000, sequence_length=256, num_layers=4, num_heads=4,
            hidden_dim=256, intermediate_dim=1024, dropout=0.1,
        ),
    },
)
class TransformerDecoderLM(ArgsConfig, keras.Model):
    """Decoder-only (GPT-style) causal LM: token ids `(batch, steps)` int, 0 = padding ->
    token+position embedding -> `num_layers` causal decoder blocks (no cross-attention) ->
    `Dense(vocabulary_size)` logits (float32).

    Output shape: `(batch, steps, vocabulary_size)` logits; position t depends only on
    tokens 0..t.
    """

    _ARGS = ("vocabulary_size", "sequence_length", "num_layers", "num_heads", "hidden_dim",
             "intermediate_dim", "dropout")

    def __init__(self, vocabulary_size=16000, sequence_length=256, num_layers=4, num_heads=4,
                 hidden_dim=256, intermediate_dim=1024, dropout=0.1, name=None, **kwargs):
        _check_common(vocabulary_size, sequence_length, num_layers, num_heads, hidden_dim,
                      intermediate_dim, dropout)
        p = "decoder_lm"
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x, mask = apply_token_embedding(token_ids, vocabulary_size, sequence_length, hidden_dim, p)
        x = keras.layers.Dropout(dropout, name=f"{p}_embedding_dropout")(x)
        x = apply_decoder_stack(x, mask, num_layers, num_heads, intermediate_dim, dropout, f"{p}_decoder")
        x = keras.layers.LayerNormalization(epsilon=1e-5, name=f"{p}_final_norm")(x)
        logits = keras.layers.Dense(vocabulary_size, dtype="float32", name=f"{p}_logits")(x)
        super().__init__(inputs=token_ids, outputs=logits, name=name, **kwargs)
        for arg in self._ARGS:
            setattr(self, arg, locals()[arg])


@keras.saving.register_keras_serializable(package="dlsuite")
class TrimPadding(keras.layers.Layer):
    """Token ids [N, L] -> [N, W]: the trailing columns that are padding (0) in every row cut
    off (W = the longest row's length, at least 1)."""

    def call(self, ids):
        positions = keras.ops.arange(1, keras.ops.shape(ids)[1] + 1, dtype="int32")
        width = keras.ops.maximum(keras.ops.max(keras.ops.where(keras.ops.not_equal(ids, 0), positions, 0)), 1)
        return ids[:, :width]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None)


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "transformer_seq2seq",
    variants={
        "transformer_seq2seq_tiny": dict(
            encoder_vocabulary_size=5000, decoder_vocabulary_size=5000, sequence_length=64,
            num_layers=1, num_heads=2, hidden_dim=64, intermediate_dim=128, dropout=0.1,
        ),
        "transformer_seq2seq_small": dict(
            encoder_vocabulary_size=15000, decoder_vocabulary_size=15000, sequence_length=64,
            num_layers=2, num_heads=8, hidden_dim=256, intermediate_dim=1024, dropout=0.1,
        ),
    },
)
class TransformerSeq2Seq(ArgsConfig, keras.Model):
    """Encoder-decoder Transformer (Vaswani et al.). Inputs: a dict
    `{"encoder_tokens": (batch, src_steps), "decoder_tokens": (batch, tgt_steps)}` of int
    ids, 0 = padding, each <= `sequence_length` steps. The decoder is causal and
    cross-attends to the non-padding encoder steps.

    Output shape: `(batch, tgt_steps, decoder_vocabulary_size)` logits (float32). With
    `trim_padding`, the columns that are padding in every row are cut off first (the batch's
    longest sentence sets the width: fixed-length batches of short sentences cost what
    their words cost), and `tgt_steps` is the trimmed decoder width.
    """

    _ARGS = ("encoder_vocabulary_size", "decoder_vocabulary_size", "sequence_length",
             "num_layers", "num_heads", "hidden_dim", "intermediate_dim", "dropout", "trim_padding")

    def __init__(self, encoder_vocabulary_size=15000, decoder_vocabulary_size=15000,
                 sequence_length=64, num_layers=2, num_heads=8, hidden_dim=256,
                 intermediate_dim=1024, dropout=0.1, trim_padding=False, name=None, **kwargs):
        _check_common(encoder_vocabulary_size, sequence_length, num_layers, num_heads,
                      hidden_dim, intermediate_dim, dropout)
        if not isinstance(decoder_vocabulary_size, int) or decoder_vocabulary_size <= 0:
            raise ValueError("`decoder_vocabulary_size` must be a positive int. Received: "
                             f"decoder_vocabulary_size={decoder_vocabulary_size}")
        p = "seq2seq"
        enc_input = keras.Input(shape=(None,), dtype="int32", name="encoder_tokens")
        dec_input = keras.Input(shape=(None,), dtype="int32", name="decoder_tokens")
        enc_ids, dec_ids = enc_input, dec_input
        if trim_padding:
            enc_ids = TrimPadding(name=f"{p}_encoder_trim")(enc_ids)
            dec_ids = TrimPadding(name=f"{p}_decoder_trim")(dec_ids)
        enc, enc_mask = apply_token_embedding(enc_ids, encoder_vocabulary_size, sequence_length,
                                              hidden_dim, f"{p}_encoder")
        enc = keras.layers.Dropout(dropout, name=f"{p}_encoder_embedding_dropout")(enc)
        enc = apply_encoder_stack(enc, enc_mask, num_layers, num_heads, intermediate_dim,
                                  dropout, f"{p}_encoder")
        dec, dec_mask = apply_token_embedding(dec_ids, decoder_vocabulary_size, sequence_length,
                                              hidden_dim, f"{p}_decoder")
        dec = keras.layers.Dropout(dropout, name=f"{p}_decoder_embedding_dropout")(dec)
        dec = apply_decoder_stack(dec, dec_mask, num_layers, num_heads, intermediate_dim, dropout,
                                  f"{p}_decoder", encoder_sequence=enc,
                                  encoder_padding_mask=enc_mask)
        logits = keras.layers.Dense(decoder_vocabulary_size, dtype="float32",
                                    name=f"{p}_logits")(dec)
        super().__init__(inputs={"encoder_tokens": enc_input, "decoder_tokens": dec_input},
                         outputs=logits, name=name, **kwargs)
        for arg in self._ARGS:
            setattr(self, arg, locals()[arg])

    def encoder_model(self):
        """`encoder_tokens` int32 [N, S] -> `encoder_sequence` float [N, S, hidden_dim] (this
        model's layers, no trimming): decoding encodes once, then runs `decoder_model` per step."""
        enc_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_tokens")
        enc = self.get_layer("seq2seq_encoder_embedding")(enc_ids)
        mask = keras.ops.not_equal(enc_ids, 0)
        for i in range(self.num_layers):
            enc = self.get_layer(f"seq2seq_encoder_layer{i}")(enc, padding_mask=mask)
        return keras.Model(enc_ids, enc, name="seq2seq_encoder")

    def decoder_model(self):
        """{`encoder_tokens` [N, S] (for the padding mask), `encoder_sequence` [N, S, d],
        `decoder_tokens` [N, T]} -> logits [N, T, decoder_vocabulary_size] (this model's layers)."""
        enc_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_tokens")
        enc = keras.Input(shape=(None, self.hidden_dim), name="encoder_sequence")
        dec_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_tokens")
        dec = self.get_layer("seq2seq_decoder_embedding")(dec_ids)
        dec_mask, enc_mask = keras.ops.not_equal(dec_ids, 0), keras.ops.not_equal(enc_ids, 0)
        for i in range(self.num_layers):
            dec = self.get_layer(f"seq2seq_decoder_layer{i}")(
                dec, encoder_sequence=enc, decoder_padding_mask=dec_mask, encoder_padding_mask=enc_mask,
                use_causal_mask=True)
        logits = self.get_layer("seq2seq_logits")(dec)
        return keras.Model({"encoder_tokens": enc_ids, "encoder_sequence": enc, "decoder_tokens": dec_ids}, logits,
                           name="seq2seq_decoder")

    def cache_shape(self, length):
        """The shape after the batch of a layer-stacked attention cache over `length` steps:
        (layers, 2 (keys, values), length, heads, head_dim)."""
        return (self.num_layers, 2, length, self.num_heads, self.hidden_dim // self.num_heads)

    def cross_attention_caches(self, encoder_tokens, encoder_sequence):
        """The cross-attention keys/values of `encoder_sequence` [N, S, d] for every decoder
        layer, [N, *cache_shape(S)]: they depend on the encoder only, so decoding computes
        them once per sentence (a pass over a dummy piece fills them)."""
        n, steps = keras.ops.shape(encoder_tokens)[0], keras.ops.shape(encoder_tokens)[1]
        layers = [self.get_layer(f"seq2seq_decoder_layer{i}") for i in range(self.num_layers)]
        shape, dtype = self.cache_shape(1)[3:], layers[0].compute_dtype  # (heads, head_dim)
        x, cross = self.get_layer("seq2seq_decoder_embedding")(keras.ops.zeros((n, 1), "int32")), []
        for layer in layers:
            x, _, cache = layer(x, self_attention_cache=keras.ops.zeros((n, 2, 1, *shape), dtype),
                                self_attention_cache_update_index=0,
                                cross_attention_cache=keras.ops.zeros((n, 2, steps, *shape), dtype),
                                cross_attention_cache_update_index=0, encoder_sequence=encoder_sequence,
                                encoder_padding_mask=keras.ops.not_equal(encoder_tokens, 0))
            cross.append(cache)
        return keras.ops.stack(cross, axis=1)

    def decode_step(self, token, index, cache, cross, encoder_tokens):
        """One decoding step with keras-hub's attention caches (it costs one position, not the
        whole prefix): the logits [N, V] of the piece after `token` [N] at position `index`,
        and `cache` [N, *cache_shape(max_length)] with that position's keys/values written;
        `cross` from `cross_attention_caches`, `encoder_tokens` [N, S] for its padding mask."""
        n, steps = keras.ops.shape(encoder_tokens)[0], keras.ops.shape(encoder_tokens)[1]
        # with a cross-attention cache the layer reads only the shape of `encoder_sequence`
        attend = dict(encoder_sequence=keras.ops.zeros((n, steps, 1), cross.dtype),
                      encoder_padding_mask=keras.ops.not_equal(encoder_tokens, 0))
        x, updated = self.get_layer("seq2seq_decoder_embedding")(token[:, None], start_index=index), []
        for i in range(self.num_layers):
            x, layer_cache, _ = self.get_layer(f"seq2seq_decoder_layer{i}")(
                x, self_attention_cache=cache[:, i], self_attention_cache_update_index=index,
                cross_attention_cache=cross[:, i], **attend)
            updated.append(layer_cache)
        return self.get_layer("seq2seq_logits")(x)[:, 0], keras.ops.stack(updated, axis=1)

    def cached_decoding(self, encoder_tokens, encoder_sequence, max_length):
        """(step, cache) to decode a piece at a time: `step(token [N], index, cache) ->
        (logits [N, V], cache)` (`decode_step` over this sentence's cross-attention caches,
        computed here once); `cache` starts as zeros [N, *cache_shape(max_length)]."""
        cross = self.cross_attention_caches(encoder_tokens, encoder_sequence)

        def step(token, index, cache):
            return self.decode_step(token, index, cache, cross, encoder_tokens)

        n = keras.ops.shape(encoder_tokens)[0]
        return step, keras.ops.zeros((n, *self.cache_shape(max_length)), cross.dtype)


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "transformer_dual_encoder",
    variants={
        "transformer_dual_encoder_tiny": dict(
            vocabulary_size=2000, sequence_length=32, num_layers=1, num_heads=2, hidden_dim=32,
            intermediate_dim=64, embedding_dim=32, dropout=0.1,
        ),
        "transformer_dual_encoder_small": dict(
            vocabulary_size=8000, sequence_length=64, num_layers=2, num_heads=4, hidden_dim=128,
            intermediate_dim=256, embedding_dim=128, dropout=0.1,
        ),
    },
)
class TransformerDualEncoder(ArgsConfig, keras.Model):
    """Dual encoder for response selection (Henderson et al. 2017): one transformer encoder
    (mean over non-padding steps) with a projection per side, L2-normalised. Inputs:
    `{"context_tokens": (batch, steps), "reply_tokens": (batch, steps)}` int ids, 0 = padding.

    Output shape: `(batch, batch)` — `scale` x the cosine similarity of every context with
    every reply of the batch (float32): row i's right answer is column i, the others are
    its in-batch negatives. `side_model("context" | "reply")` gives one side's embeddings.
    """

    _ARGS = ("vocabulary_size", "sequence_length", "num_layers", "num_heads", "hidden_dim",
             "intermediate_dim", "embedding_dim", "dropout", "scale")

    def __init__(self, vocabulary_size=8000, sequence_length=64, num_layers=2, num_heads=4,
                 hidden_dim=128, intermediate_dim=256, embedding_dim=128, dropout=0.1, scale=20.0,
                 name=None, **kwargs):
        _check_common(vocabulary_size, sequence_length, num_layers, num_heads, hidden_dim,
                      intermediate_dim, dropout)
        if not isinstance(embedding_dim, int) or embedding_dim <= 0:
            raise ValueError(f"`embedding_dim` must be a positive int. Received: embedding_dim={embedding_dim}")
        if not scale > 0:
            raise ValueError(f"`scale` must be positive. Received: scale={scale}")
        inputs = {f"{side}_tokens": keras.Input(shape=(None,), dtype="int32", name=f"{side}_tokens")
                  for side in ("context", "reply")}
        p = "dual"
        embedding = keras_hub.layers.TokenAndPositionEmbedding(vocabulary_size, sequence_length, hidden_dim,
                                                               name=f"{p}_embedding")
        blocks = [keras_hub.layers.TransformerEncoder(intermediate_dim, num_heads, dropout=dropout,
                                                      name=f"{p}_encoder_layer{i}") for i in range(num_layers)]
        dropout_layer = keras.layers.Dropout(dropout, name=f"{p}_embedding_dropout")
        sides = {}
        for side in ("context", "reply"):
            ids = inputs[f"{side}_tokens"]
            mask = keras.ops.not_equal(ids, 0)
            x = dropout_layer(embedding(ids))
            for block in blocks:
                x = block(x, padding_mask=mask)
            x = weighted_mean(x, keras.ops.expand_dims(mask, -1))
            x = keras.layers.Dense(embedding_dim, dtype="float32", name=f"{p}_{side}_projection")(x)
            sides[side] = keras.layers.UnitNormalization(name=f"{p}_{side}_embedding")(x)
        scores = keras.ops.matmul(sides["context"], keras.ops.transpose(sides["reply"])) * scale
        super().__init__(inputs=inputs, outputs=scores, name=name, **kwargs)
        for arg in self._ARGS:
            setattr(self, arg, locals()[arg])

    def side_model(self, side):
        """`token_ids` int32 [N, L] -> L2-normalised `embedding` [N, embedding_dim] of `side`
        ("context" or "reply"), with this model's layers."""
        ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        mask = keras.ops.not_equal(ids, 0)
        x = self.get_layer("dual_embedding")(ids)
        for i in range(self.num_layers):
            x = self.get_layer(f"dual_encoder_layer{i}")(x, padding_mask=mask)
        x = self.get_layer(f"dual_{side}_projection")(weighted_mean(x, keras.ops.expand_dims(mask, -1)))
        return keras.Model(ids, self.get_layer(f"dual_{side}_embedding")(x), name=f"dual_{side}_encoder")
