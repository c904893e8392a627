"""Autoregressive generation and scoring with a trained causal language model.

A causal LM here is a Keras model `token_ids int32 [N, L] -> logits [N, L, V]` built by
`transformer_lm` (keras-hub `TransformerDecoder` blocks) or `recurrent` (LSTM/GRU) with
byte ids (`shared.data.byte_text`). `IncrementalLM.of(model)` runs it one step at a time
with a cache, so generating T tokens costs O(T) steps of one token instead of O(T²):
the transformer keeps every layer's attention keys/values (keras-hub's cached attention,
as GPT-2 in keras-hub does), a recurrent net its states.

Decoding uses keras-hub samplers (`Sampler.__call__`: the loop, prompt masks, stop
tokens). `SignatureSampler` is one whose temperature, top-k, top-p and seed are tensors,
so they can be inputs of an exported signature (keras-hub's samplers take Python values
fixed at construction, and a stateful seed): temperature 0 is greedy.
"""

import warnings
import weakref

import keras
import keras_hub
import tensorflow as tf

from shared.data.byte_text import END, decode_graph, encode_graph, num_chars_graph

NEG_INF = -1e9


class IncrementalLM:
    """A causal LM run a few tokens at a time with a cache (`of(model)` picks the kind)."""

    max_length = None  # the longest sequence it can attend over (None: unbounded)

    _built = weakref.WeakKeyDictionary()  # one per model, so its compiled step is traced once

    @staticmethod
    def of(model):
        if model not in IncrementalLM._built:
            layers = _flat_layers(model)
            if any(isinstance(l, keras_hub.layers.TransformerDecoder) for l in layers):
                IncrementalLM._built[model] = _CachedTransformer(model, layers)
            elif any(isinstance(l, keras.layers.RNN) for l in layers):
                IncrementalLM._built[model] = _CachedRecurrent(model, layers)
            else:
                raise ValueError(f"{model.name}: not a causal LM of TransformerDecoder or recurrent layers")
        return IncrementalLM._built[model]

    def __init__(self, model, layers):
        self.model = model
        self.compiled_step = tf.function(self.step, reduce_retracing=True)  # for eager, streamed loops

    def init_cache(self, batch_size, max_length):
        raise NotImplementedError

    def step(self, token_ids, cache, index):
        """Logits [N, T, V] of `token_ids` [N, T] at positions index..index+T-1, and the cache."""
        raise NotImplementedError


def _flat_layers(model):
    out = []
    for layer in model.layers:
        out += _flat_layers(layer) if isinstance(layer, keras.Model) else [layer]
    return out


class _CachedTransformer(IncrementalLM):
    def __init__(self, model, layers):
        super().__init__(model, layers)
        self.embedding = next(l for l in layers if isinstance(l, keras_hub.layers.TokenAndPositionEmbedding))
        self.decoders = [l for l in layers if isinstance(l, keras_hub.layers.TransformerDecoder)]
        norms = [l for l in layers if isinstance(l, keras.layers.LayerNormalization)]
        self.norm = norms[-1] if norms else None
        self.head = [l for l in layers if isinstance(l, keras.layers.Dense)][-1]
        self.max_length = int(self.embedding.position_embedding.sequence_length)
        d = self.decoders[0]
        self.num_heads, self.head_dim = d.num_heads, int(self.embedding.embedding_dim) // d.num_heads

    def init_cache(self, batch_size, max_length):
        return tf.zeros([batch_size, len(self.decoders), 2, max_length, self.num_heads, self.head_dim])

    def step(self, token_ids, cache, index):
        x = self.embedding(token_ids, start_index=index)
        caches = []
        for i, decoder in enumerate(self.decoders):
            x, layer_cache = decoder(x, self_attention_cache=cache[:, i], self_attention_cache_update_index=index)
            caches.append(layer_cache)
        if self.norm is not None:
            x = self.norm(x)
        return self.head(x), tf.stack(caches, axis=1)


class _CachedRecurrent(IncrementalLM):
    def __init__(self, model, layers):
        super().__init__(model, layers)
        self.embedding = next(l for l in layers if isinstance(l, keras.layers.Embedding))
        # The trained cells in new RNN wrappers that also return their states.
        self.rnns = [keras.layers.RNN(l.cell, return_sequences=True, return_state=True)
                     for l in layers if isinstance(l, keras.layers.RNN)]
        self.head = [l for l in layers if isinstance(l, keras.layers.Dense)][-1]

    def init_cache(self, batch_size, max_length):
        return tuple(tuple(tf.zeros([batch_size, size]) for size in _state_sizes(rnn.cell)) for rnn in self.rnns)

    def step(self, token_ids, cache, index):
        x = self.embedding(token_ids)
        states = []
        for rnn, state in zip(self.rnns, cache):
            x, *state = rnn(x, initial_state=list(state))
            states.append(tuple(state))
        return self.head(x), tuple(states)


def _state_sizes(cell):
    size = cell.state_size
    return list(size) if isinstance(size, (list, tuple)) else [size]


class SignatureSampler(keras_hub.samplers.Sampler):
    """A keras-hub sampler driven by tensors: `temperature` (0 = greedy), `top_k` (0 = all),
    `top_p` (1 = all), `seed` (stateless draws, one stream per (seed, step), so a seed
    gives the same text every time and in every process)."""

    def __init__(self, temperature=0.0, top_k=0, top_p=1.0, seed=0):
        super().__init__()
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed
        self.step_index = tf.constant(0)

    def compute_probabilities(self, logits):
        t = tf.cast(self.temperature, tf.float32)
        return tf.nn.softmax(tf.cast(logits, tf.float32) / tf.where(t > 0, t, 1.0))

    def get_next_token(self, probabilities):
        vocabulary = tf.shape(probabilities)[-1]
        sorted_p, order = tf.math.top_k(probabilities, k=vocabulary)
        k = tf.cast(self.top_k, tf.int32)
        k = tf.where(k > 0, tf.minimum(k, vocabulary), vocabulary)
        keep = tf.range(vocabulary)[None, :] < k
        # top-p: the smallest prefix whose mass reaches p (the first token is always kept)
        keep &= (tf.cumsum(sorted_p, axis=-1) - sorted_p) < tf.cast(self.top_p, tf.float32)
        logits = tf.where(keep, tf.math.log(tf.maximum(sorted_p, 1e-30)), NEG_INF)
        seed = tf.stack([tf.cast(self.seed, tf.int32), tf.cast(self.step_index, tf.int32)])
        drawn = tf.random.stateless_categorical(logits, 1, seed=seed, dtype=tf.int32)[:, 0]
        sampled = tf.gather(order, drawn, batch_dims=1)
        greedy = tf.cast(tf.argmax(probabilities, axis=-1), tf.int32)
        return tf.where(tf.cast(self.temperature, tf.float32) > 0, sampled, greedy)


def _prompt_batch(prompt_ids, max_new_tokens, max_length):
    """Right-padded prompts [N, total], their mask and lengths; prompts longer than the
    model's context allows are cut to their last tokens."""
    lengths = tf.cast(prompt_ids.row_lengths(), tf.int32)
    if max_length is not None:
        max_new_tokens = tf.minimum(max_new_tokens, max_length - 1)
        budget = max_length - max_new_tokens
        starts = tf.maximum(lengths - budget, 0)
        prompt_ids = tf.gather(prompt_ids, tf.ragged.range(starts, lengths), batch_dims=1)
        lengths = tf.cast(prompt_ids.row_lengths(), tf.int32)
    total = tf.reduce_max(lengths) + max_new_tokens
    prompt = prompt_ids.to_tensor(default_value=0)
    prompt = tf.pad(prompt, [[0, 0], [0, total - tf.shape(prompt)[1]]])
    mask = tf.sequence_mask(lengths, total)
    return prompt, mask, lengths, max_new_tokens


def generate_ids(model, prompt_ids, max_new_tokens, sampler, cached=True, on_token=None, stop_at_end=True):
    """Continues each prompt (ragged int32 [N, None], each starting with END) by up to
    `max_new_tokens` tokens with `sampler` (any keras-hub sampler); stops a row at END.

    Returns `(ids [N, total], lengths [N], new_lengths [N])`: the prompt (possibly cut to
    the model's context) and continuation of each row, where row i's continuation is
    `ids[i, lengths[i] : lengths[i] + new_lengths[i]]`. `cached=False` recomputes the
    whole prefix every step (for comparison). `on_token(ids, index)` is called eagerly
    after each step when given (streaming). `stop_at_end=False` always generates
    `max_new_tokens` (speed measurements)."""
    lm = IncrementalLM.of(model)
    max_new_tokens = tf.cast(max_new_tokens, tf.int32)
    prompt, mask, lengths, max_new_tokens = _prompt_batch(prompt_ids, max_new_tokens, lm.max_length)
    total = tf.shape(prompt)[1]
    start = tf.reduce_min(lengths)
    blocked = tf.one_hot(0, model.outputs[0].shape[-1], on_value=NEG_INF, off_value=0.0)  # padding id

    step = lm.compiled_step if tf.executing_eagerly() else lm.step  # eager: a streamed loop
    if cached:
        cache = lm.init_cache(tf.shape(prompt)[0], total)
        cache = tf.cond(start > 1, lambda: step(prompt[:, :start - 1], cache, 0)[1],  # the common prompt
                        lambda: cache)

        def next_logits(ids, cache, index):
            logits, cache = step(ids[:, index - 1:index], cache, index - 1)
            return logits[:, 0], cache
    else:
        cache = ()

        def next_logits(ids, cache, index):
            with warnings.catch_warnings():  # Keras warns of a softmax over one key at the first step
                warnings.simplefilter("ignore", UserWarning)
                return model(ids[:, :index], training=False)[:, -1], cache

    def next(ids, cache, index):
        if on_token is not None and index > start:
            on_token(ids, index - 1)
        if isinstance(sampler, SignatureSampler):
            sampler.step_index = index
        logits, cache = next_logits(ids, cache, index)
        return logits + blocked, None, cache

    ids = sampler(next, prompt, cache=cache, index=start, mask=mask, stop_token_ids=(END,) if stop_at_end else None)
    generated = tf.logical_and(tf.logical_not(mask), tf.range(total)[None, :] < (lengths + max_new_tokens)[:, None])
    ended = tf.cumsum(tf.cast(tf.logical_and(generated, tf.equal(ids, END)), tf.int32), axis=1) > 0
    ended = tf.logical_and(ended, stop_at_end)
    new_lengths = tf.reduce_sum(tf.cast(tf.logical_and(generated, tf.logical_not(ended)), tf.int32), axis=1)
    if on_token is not None:
        on_token(ids, None)
    return ids, lengths, new_lengths


def continuation_text(ids, lengths, new_lengths):
    """The generated continuation of each row as a string."""
    return decode_graph(tf.gather(ids, tf.ragged.range(lengths, lengths + new_lengths), batch_dims=1))


def generate_text(model, prompts, max_new_tokens, sampler, cached=True):
    """`prompts` string [N] -> each prompt followed by its continuation, string [N]."""
    ids, lengths, new_lengths = generate_ids(model, encode_graph(prompts), max_new_tokens, sampler, cached)
    return tf.strings.join([prompts, continuation_text(ids, lengths, new_lengths)])


def sequence_log_prob(model, ids, window=None):
    """Natural-log probability of every next token of each row of `ids` (int32 [N, T+1],
    0-padded), summed: [N]. With a `window` (a transformer's context) longer rows are
    scored in windows of `window` tokens moved by `window // 2`, each token counted once,
    with at least `window // 2` tokens of history after the first window."""
    inputs, targets = ids[:, :-1], ids[:, 1:]
    if window is None:  # a recurrent net: one pass over the whole row
        logits = model(inputs, training=False)
        picked = tf.gather(tf.nn.log_softmax(tf.cast(logits, tf.float32)), targets, batch_dims=2)
        return tf.reduce_sum(tf.where(targets > 0, picked, 0.0), axis=1)
    n, hop = tf.shape(inputs)[0], window // 2
    frames_in = tf.signal.frame(inputs, window, hop, pad_end=True)  # [N, F, W]
    frames_out = tf.signal.frame(targets, window, hop, pad_end=True)
    num_frames = tf.shape(frames_in)[1]
    logits = model(tf.reshape(frames_in, [-1, window]), training=False)
    picked = tf.gather(tf.nn.log_softmax(tf.cast(logits, tf.float32)), tf.reshape(frames_out, [-1, window]),
                       batch_dims=2)
    picked = tf.reshape(picked, [n, num_frames, window])
    # frame 0 counts all its positions, frame f > 0 only its last `hop` (the new ones)
    counted = tf.logical_or(tf.range(num_frames)[:, None] == 0, tf.range(window)[None, :] >= window - hop)
    return tf.reduce_sum(tf.where(counted[None] & (frames_out > 0), picked, 0.0), axis=[1, 2])


def score_texts(model, texts, window=None):
    """{"log_prob": natural-log probability of each whole text (its bytes after END),
    "num_chars": its characters}: string [N] -> float32 [N], int32 [N]."""
    ids = encode_graph(texts).to_tensor(default_value=0)
    ids = tf.pad(ids, [[0, 0], [0, 1]])  # at least one target column, also for empty texts
    return {"log_prob": sequence_log_prob(model, ids, window), "num_chars": num_chars_graph(texts)}


def context_window(model):
    """The window `score_texts` must use for `model` (its attention span), or None."""
    return IncrementalLM.of(model).max_length
