"""Greedy and beam-search decoding of sequence-to-sequence models, as TensorFlow graph code
(a `tf.while_loop`), so the loop runs inside an exported SavedModel.

Both take `next_log_probs(token, step, state) -> (log_probs [rows, vocabulary], state)`: the
log-probabilities of the token after `token` (int32 [rows], the one at position `step`;
`start_id` at 0) and the model's updated decoding state (a nest of tensors with a leading
rows dimension, e.g. attention caches, carried from `state`; beam search reorders it with
its hypotheses). Rows stop at `end_id`; after it they are padded with 0.

Beam search keeps `beam_size` hypotheses per input, ranked by the summed log-probability
divided by `length ** length_penalty` (0: the plain sum; 1: the mean per token), where a
finished hypothesis' length counts its end token. With `beam_size` 1 it is greedy decoding.
"""

import tensorflow as tf

NEG_INF = -1e9


def greedy_decode(next_log_probs, state, batch_size, max_length, start_id, end_id):
    """(tokens int32 [N, max_length] after the start token, 0-padded after the end token;
    the summed log-probability float32 [N]; lengths int32 [N] counting the end token)."""
    tokens = tf.concat([tf.fill([batch_size, 1], start_id), tf.zeros([batch_size, max_length], tf.int32)], 1)

    def step(t, tokens, done, score, length, state):
        log_probs, state = next_log_probs(tokens[:, t], t, state)
        best = tf.cast(tf.argmax(log_probs, -1), tf.int32)
        best_log_prob = tf.reduce_max(log_probs, -1)
        token = tf.where(done, 0, best)
        score += tf.where(done, 0.0, best_log_prob)
        length += tf.cast(~done, tf.int32)
        tokens = tf.tensor_scatter_nd_update(tokens, tf.stack([tf.range(batch_size), tf.fill([batch_size], t + 1)], 1),
                                             token)
        return t + 1, tokens, done | (token == end_id), score, length, state

    _, tokens, _, score, length, _ = tf.while_loop(
        lambda t, tokens, done, *_: (t < max_length) & ~tf.reduce_all(done), step,
        (tf.constant(0), tokens, tf.zeros([batch_size], tf.bool), tf.zeros([batch_size]),
         tf.zeros([batch_size], tf.int32), state))
    return tokens[:, 1:], score, length


def beam_search(next_log_probs, state, batch_size, max_length, start_id, end_id, beam_size=4, length_penalty=1.0):
    """The best hypothesis of each input by the length-normalised score: (tokens int32
    [N, max_length], summed log-probability float32 [N], lengths int32 [N]).
    `next_log_probs` sees N * beam_size rows, input-major (rows i*beam_size … of input i)."""
    k = beam_size
    rows = batch_size * k
    tokens = tf.concat([tf.fill([rows, 1], start_id), tf.zeros([rows, max_length], tf.int32)], 1)
    score = tf.tile(tf.concat([[0.0], tf.fill([k - 1], NEG_INF)], 0), [batch_size])  # one live start per input
    penalty = tf.constant(length_penalty, tf.float32)

    def normalised(total, length):
        return total / tf.pow(tf.maximum(tf.cast(length, tf.float32), 1.0), penalty)

    def step(t, tokens, done, score, length, state):
        log_probs, state = next_log_probs(tokens[:, t], t, state)  # [rows, V]
        vocab = tf.shape(log_probs)[1]
        # a finished hypothesis continues only with padding, at no cost
        pad_only = tf.concat([[0.0], tf.fill([vocab - 1], NEG_INF)], 0)
        log_probs = tf.where(done[:, None], pad_only[None, :], log_probs)
        total = score[:, None] + log_probs  # [rows, V]
        new_length = tf.where(done, length, length + 1)
        ranked = normalised(total, new_length[:, None])
        index = tf.math.top_k(tf.reshape(ranked, [batch_size, k * vocab]), k).indices  # [N, k]
        parent = tf.reshape(index // vocab + tf.range(batch_size)[:, None] * k, [-1])  # rows
        token = tf.reshape(index % vocab, [-1])
        score = tf.gather(tf.reshape(total, [-1]), parent * vocab + token)
        was_done = tf.gather(done, parent)
        token = tf.where(was_done, 0, token)
        tokens = tf.gather(tokens, parent)
        tokens = tf.tensor_scatter_nd_update(tokens, tf.stack([tf.range(rows), tf.fill([rows], t + 1)], 1), token)
        state = tf.nest.map_structure(lambda s: tf.gather(s, parent), state)
        return t + 1, tokens, was_done | (token == end_id), score, tf.gather(new_length, parent), state

    _, tokens, _, score, length, _ = tf.while_loop(
        lambda t, tokens, done, *_: (t < max_length) & ~tf.reduce_all(done), step,
        (tf.constant(0), tokens, tf.zeros([rows], tf.bool), score, tf.zeros([rows], tf.int32), state))
    best = tf.argmax(tf.reshape(normalised(score, length), [batch_size, k]), -1, output_type=tf.int32)
    pick = tf.range(batch_size) * k + best
    return tf.gather(tokens, pick)[:, 1:], tf.gather(score, pick), tf.gather(length, pick)
