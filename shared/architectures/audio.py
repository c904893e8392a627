"""Speech models that take raw float waveforms `(batch, samples)`.

* `LogMelSpectrogram`: the in-model front end, `log(mel(|STFT|**power) + log_offset)`,
  identical to the `tf.signal` recipe (`stft` -> `linear_to_mel_weight_matrix` -> log).
* `CTCAcousticModel`: DeepSpeech2-style front end -> 2D convs -> bidirectional RNN stack
  -> per-frame softmax over `vocabulary_size + 1` classes (the last one is the CTC blank),
  with `output_lengths()`, `ctc_loss()` and `ctc_greedy_decode()`.
* `KeywordSpotter`: small CNN over log-mel -> class probabilities.

Why not `keras.layers.MelSpectrogram`: it always centers frames (reflect-pads
`fft_length // 2` on both sides, so it yields `1 + samples // stride` frames instead of
tf.signal's `1 + (samples - frame_length) // stride`), frames `fft_length` samples with
the window zero-padded to the middle when `sequence_length < fft_length` (shifting frames
against tf.signal), returns `(batch, mels, frames)`, and its dB scale clips at
`max over the whole batch - top_db`, which makes one example's features depend on the
rest of the batch. `keras.ops.stft` has the same framing. So the front end is a small
layer over `tf.signal` (TF is this suite's only backend).
"""

import math

import keras
import tensorflow as tf

from shared.architectures import register
from shared.architectures.base import ArgsConfig
from shared.architectures.recurrent import bidirectional_wrapper


@keras.saving.register_keras_serializable(package="dlsuite")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveform `(batch, samples)` float -> log-mel `(batch, frames, num_mel_bins)` float32,
    `frames = 1 + (samples - frame_length) // frame_step` (no padding, as `tf.signal.stft`).

    Always computes in float32 (also under a mixed-precision policy), and stays float in an
    int8 TFLite model (`keep_float_in_int8`): log-spectra span a range int8 cannot carry.
    """

    keep_float_in_int8 = True

    def __init__(self, sampling_rate=16000, frame_length=400, frame_step=160, fft_length=512,
                 num_mel_bins=80, lower_edge_hertz=20.0, upper_edge_hertz=7600.0, power=2.0,
                 log_offset=1e-6, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        for arg, value in dict(sampling_rate=sampling_rate, frame_length=frame_length,
                               frame_step=frame_step, fft_length=fft_length,
                               num_mel_bins=num_mel_bins).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{arg}` must be a positive int. Received: {arg}={value}")
        if fft_length < frame_length:
            raise ValueError(
                "`fft_length` must be >= `frame_length`. Received: "
                f"fft_length={fft_length}, frame_length={frame_length}"
            )
        if not 0 <= lower_edge_hertz < upper_edge_hertz <= sampling_rate / 2:
            raise ValueError(
                "Need 0 <= lower_edge_hertz < upper_edge_hertz <= sampling_rate / 2. Received: "
                f"lower_edge_hertz={lower_edge_hertz}, upper_edge_hertz={upper_edge_hertz}, "
                f"sampling_rate={sampling_rate}"
            )
        if log_offset <= 0 or power <= 0:
            raise ValueError(
                f"`log_offset` and `power` must be > 0. Received: log_offset={log_offset}, power={power}"
            )
        self.sampling_rate = sampling_rate
        self.frame_length = frame_length
        self.frame_step = frame_step
        self.fft_length = fft_length
        self.num_mel_bins = num_mel_bins
        self.lower_edge_hertz = float(lower_edge_hertz)
        self.upper_edge_hertz = float(upper_edge_hertz)
        self.power = float(power)
        self.log_offset = float(log_offset)
        self._mel_matrix = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins, fft_length // 2 + 1, sampling_rate, self.lower_edge_hertz,
            self.upper_edge_hertz,
        ).numpy()

    def call(self, waveform):
        waveform = tf.cast(waveform, tf.float32)
        stft = tf.signal.stft(waveform, self.frame_length, self.frame_step, self.fft_length)
        spectrum = tf.abs(stft)
        if self.power != 1.0:
            spectrum = tf.pow(spectrum, self.power)
        mel = tf.tensordot(spectrum, tf.constant(self._mel_matrix), 1)
        mel.set_shape(spectrum.shape[:-1].concatenate([self.num_mel_bins]))
        return tf.math.log(mel + self.log_offset)

    def num_frames(self, samples):
        """Frame count for `samples` (int or int tensor) waveform samples."""
        if isinstance(samples, int):
            return max(0, 1 + (samples - self.frame_length) // self.frame_step)
        samples = tf.cast(samples, tf.int32)
        return tf.maximum(0, 1 + (samples - self.frame_length) // self.frame_step)

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else self.num_frames(samples)
        return (*input_shape[:-1], frames, self.num_mel_bins)

    def get_config(self):
        config = super().get_config()
        config.update({
            "sampling_rate": self.sampling_rate, "frame_length": self.frame_length,
            "frame_step": self.frame_step, "fft_length": self.fft_length,
            "num_mel_bins": self.num_mel_bins, "lower_edge_hertz": self.lower_edge_hertz,
            "upper_edge_hertz": self.upper_edge_hertz, "power": self.power,
            "log_offset": self.log_offset,
        })
        return config


@keras.saving.register_keras_serializable(package="dlsuite")
class UtteranceNormalization(keras.layers.Layer):
    """Per-example mean/variance normalization over all non-batch axes (CMVN):
    `(x - mean) / sqrt(var + epsilon)`. Stateless, so it needs no adaptation and
    behaves the same in training and inference. Output shape: same as input. Float in an
    int8 TFLite model, as the front end before it."""

    keep_float_in_int8 = True

    def __init__(self, epsilon=1e-3, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        axes = list(range(1, len(x.shape)))
        mean, var = tf.nn.moments(x, axes=axes, keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="dlsuite")
class SpecAugment(keras.layers.Layer):
    """SpecAugment masking (Park et al. 2019) of a log-mel `(batch, frames, mels)`, in
    training only: `freq_masks` bands of up to `freq_mask_width` mel bins and `time_masks`
    spans of up to `time_mask_fraction` of the frames, each set to the example's mean.
    Identity at inference. Output shape: same as input."""

    def __init__(self, freq_masks=2, freq_mask_width=15, time_masks=2, time_mask_fraction=0.05, seed=None,
                 **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.freq_masks, self.freq_mask_width = int(freq_masks), int(freq_mask_width)
        self.time_masks, self.time_mask_fraction = int(time_masks), float(time_mask_fraction)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _masks(self, batch, size, count, max_width):
        """`(batch, size)` bool: `count` random spans of width [0, max_width] per example."""
        keep = tf.zeros([batch, size], tf.bool)
        positions = tf.range(size)[None, :]
        for _ in range(count):
            u = keras.random.uniform([2, batch, 1], seed=self.seed_generator)
            width = tf.cast(u[0] * tf.cast(max_width + 1, tf.float32), tf.int32)
            start = tf.cast(u[1] * tf.cast(tf.maximum(size - width, 1), tf.float32), tf.int32)
            keep = keep | ((positions >= start) & (positions < start + width))
        return keep

    def call(self, x, training=False):
        if not training:
            return x
        batch, frames, mels = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        freq = self._masks(batch, mels, self.freq_masks, tf.constant(self.freq_mask_width))
        time = self._masks(batch, frames, self.time_masks,
                           tf.cast(self.time_mask_fraction * tf.cast(frames, tf.float32), tf.int32))
        return tf.where(freq[:, None, :] | time[:, :, None], mean, x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "freq_masks": self.freq_masks, "freq_mask_width": self.freq_mask_width,
                "time_masks": self.time_masks, "time_mask_fraction": self.time_mask_fraction, "seed": self.seed}


def ctc_output_lengths(sample_lengths, frame_length, frame_step, conv_strides):
    """Valid output frames `(batch,)` int32 of a `CTCAcousticModel` for waveform lengths
    `(batch,)`: the front end's frames, then ceil(frames / stride) per conv ("same")."""
    samples = tf.cast(sample_lengths, tf.int32)
    frames = tf.maximum(0, 1 + (samples - frame_length) // frame_step)
    for st, _ in conv_strides:
        frames = (frames + st - 1) // st
    return frames


_FRONT_END_ARGS = ("sampling_rate", "frame_length", "frame_step", "fft_length", "num_mel_bins",
                   "lower_edge_hertz", "upper_edge_hertz")


def _keep_front_end(model, *values):
    """Sets a model's front-end arguments (`_FRONT_END_ARGS`, in order) as attributes for its config."""
    for arg, value in zip(_FRONT_END_ARGS, values):
        setattr(model, arg, value)




def apply_conv_bn_relu_block(x, filters, kernel_size, strides, name):
    """Conv2D("same", no bias) -> BatchNorm -> ReLU. `(b, t, f, c)` -> `(b, ceil(t/st), ceil(f/sf), filters)`.

    BatchNorm's moving statistics use momentum 0.9, not Keras's 0.99: the convolutions'
    outputs here have variances far below the initial moving variance of 1 (0.009 measured
    on a keyword spotter), so at 0.99 inference-mode outputs were wrong for the first
    ~700 steps (test accuracy 0.22 in inference mode vs 0.90 with batch statistics, measured
    after 156 steps)."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def ctc_loss(labels, probs, label_lengths, output_lengths, blank_index):
    """Per-example CTC loss `(batch,)` from softmax `probs` `(batch, frames, classes)`.

    `labels`: `(batch, max_label_len)` ints in `[0, classes)` except `blank_index`
    (padding beyond `label_lengths` is ignored); lengths are `(batch,)` ints. Wraps
    `keras.ops.ctc_loss` (which wants logits: log-probabilities are valid logits).
    """
    log_probs = keras.ops.log(keras.ops.maximum(keras.ops.cast(probs, "float32"), 1e-12))
    return keras.ops.ctc_loss(
        keras.ops.cast(labels, "int32"), log_probs, keras.ops.cast(label_lengths, "int32"),
        keras.ops.cast(output_lengths, "int32"), mask_index=blank_index,
    )


def ctc_greedy_decode(probs, output_lengths, blank_index):
    """Best-path decoding: `(batch, frames, classes)` -> `(batch, max_len)` int32 label
    ids, repeats merged, blanks removed, padded with -1 (`keras.ops.ctc_decode`)."""
    decoded, _ = keras.ops.ctc_decode(
        keras.ops.cast(probs, "float32"), keras.ops.cast(output_lengths, "int32"),
        strategy="greedy", mask_index=blank_index,
    )
    return decoded[0]


_DS2_CONV = dict(conv_filters=(32, 32), conv_kernel_sizes=((11, 41), (11, 21)),
                 conv_strides=((2, 2), (1, 2)))


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "ctc_acoustic",
    variants={
        "deepspeech2": dict(
            vocabulary_size=28, sampling_rate=16000, frame_length=400, frame_step=160,
            fft_length=512, num_mel_bins=80, lower_edge_hertz=20.0, upper_edge_hertz=7600.0,
            rnn_cell="gru", rnn_units=512, rnn_layers=5, dropout=0.5, **_DS2_CONV,
        ),
        "deepspeech2_small": dict(
            vocabulary_size=28, sampling_rate=16000, frame_length=400, frame_step=160,
            fft_length=512, num_mel_bins=80, lower_edge_hertz=20.0, upper_edge_hertz=7600.0,
            rnn_cell="gru", rnn_units=128, rnn_layers=2, dropout=0.2,
            conv_filters=(16, 16), conv_kernel_sizes=((11, 41), (11, 21)),
            conv_strides=((2, 2), (1, 2)),
        ),
        "deepspeech2_tiny": dict(
            vocabulary_size=28, sampling_rate=16000, frame_length=400, frame_step=160,
            fft_length=512, num_mel_bins=40, lower_edge_hertz=20.0, upper_edge_hertz=7600.0,
            rnn_cell="gru", rnn_units=32, rnn_layers=1, dropout=0.0,
            conv_filters=(8,), conv_kernel_sizes=((11, 21),), conv_strides=((2, 2),),
        ),
    },
)
class CTCAcousticModel(ArgsConfig, keras.Model):
    """DeepSpeech2-style acoustic model (Amodei et al. 2015) for CTC training.

    waveform `(batch, samples)` float32 -> `LogMelSpectrogram` `(batch, frames, mels)` ->
    conv blocks over (time, mel) -> reshape -> `rnn_layers` x Bidirectional(GRU/LSTM) ->
    Dense(2 * rnn_units, relu) -> Dropout -> Dense(vocabulary_size + 1, softmax, float32).

    Output shape: `(batch, out_frames, vocabulary_size + 1)` per-frame probabilities;
    index `vocabulary_size` (`blank_index`) is the CTC blank. `output_lengths(samples)`
    maps waveform lengths to valid `out_frames`.
    """

    _ARGS = ("vocabulary_size", *_FRONT_END_ARGS, "conv_filters", "conv_kernel_sizes",
             "conv_strides", "rnn_cell", "rnn_units", "rnn_layers", "dropout", "spec_augment")

    def __init__(self, vocabulary_size=28, sampling_rate=16000, frame_length=400,
                 frame_step=160, fft_length=512, num_mel_bins=80, lower_edge_hertz=20.0,
                 upper_edge_hertz=7600.0, conv_filters=(32, 32),
                 conv_kernel_sizes=((11, 41), (11, 21)), conv_strides=((2, 2), (1, 2)),
                 rnn_cell="gru", rnn_units=512, rnn_layers=5, dropout=0.5, spec_augment=False, name=None,
                 **kwargs):
        if not isinstance(vocabulary_size, int) or vocabulary_size < 1:
            raise ValueError(f"`vocabulary_size` must be >= 1. Received: vocabulary_size={vocabulary_size}")
        conv_filters = [int(f) for f in conv_filters]
        conv_kernel_sizes = [[int(k) for k in ks] for ks in conv_kernel_sizes]
        conv_strides = [[int(s) for s in ss] for ss in conv_strides]
        if not len(conv_filters) == len(conv_kernel_sizes) == len(conv_strides):
            raise ValueError(
                "`conv_filters`, `conv_kernel_sizes` and `conv_strides` need one entry per conv. "
                f"Received: conv_filters={conv_filters}, conv_kernel_sizes={conv_kernel_sizes}, "
                f"conv_strides={conv_strides}"
            )
        if rnn_cell not in ("gru", "lstm"):
            raise ValueError(f"`rnn_cell` must be 'gru' or 'lstm'. Received: rnn_cell={rnn_cell}")
        if rnn_units <= 0 or rnn_layers <= 0:
            raise ValueError(
                f"`rnn_units` and `rnn_layers` must be positive. Received: rnn_units={rnn_units}, "
                f"rnn_layers={rnn_layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        p = "ctc"
        front = LogMelSpectrogram(sampling_rate, frame_length, frame_step, fft_length, num_mel_bins,
                                  lower_edge_hertz, upper_edge_hertz, name=f"{p}_log_mel")
        waveform = keras.Input(shape=(None,), dtype="float32", name="waveform")
        x = front(waveform)
        if spec_augment:
            x = SpecAugment(freq_mask_width=max(1, num_mel_bins * 15 // 80), name=f"{p}_spec_augment")(x)
        x = keras.layers.Reshape((-1, num_mel_bins, 1), name=f"{p}_add_channel")(x)
        mels = num_mel_bins
        for i, (f, k, s) in enumerate(zip(conv_filters, conv_kernel_sizes, conv_strides)):
            x = apply_conv_bn_relu_block(x, f, k, s, name=f"{p}_conv{i}")
            mels = math.ceil(mels / s[1])
        channels = conv_filters[-1] if conv_filters else 1
        x = keras.layers.Reshape((-1, mels * channels), name=f"{p}_merge_features")(x)
        rnn = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[rnn_cell]
        for i in range(rnn_layers):
            x = bidirectional_wrapper(
                rnn(rnn_units, return_sequences=True, name=f"{p}_rnn{i}_{rnn_cell}"),
                name=f"{p}_rnn{i}_bidirectional",
            )(x)
            if i < rnn_layers - 1 and dropout:
                x = keras.layers.Dropout(dropout, name=f"{p}_rnn{i}_dropout")(x)
        x = keras.layers.Dense(2 * rnn_units, activation="relu", name=f"{p}_dense")(x)
        x = keras.layers.Dropout(dropout, name=f"{p}_dense_dropout")(x)
        outputs = keras.layers.Dense(vocabulary_size + 1, activation="softmax", dtype="float32",
                                     name=f"{p}_output")(x)
        super().__init__(inputs=waveform, outputs=outputs, name=name, **kwargs)
        self.vocabulary_size = vocabulary_size
        _keep_front_end(self, sampling_rate, frame_length, frame_step, fft_length, num_mel_bins, lower_edge_hertz,
                        upper_edge_hertz)
        self.conv_filters = conv_filters
        self.conv_kernel_sizes = conv_kernel_sizes
        self.conv_strides = conv_strides
        self.rnn_cell = rnn_cell
        self.rnn_units = rnn_units
        self.rnn_layers = rnn_layers
        self.dropout = dropout
        self.spec_augment = bool(spec_augment)
        self.blank_index = vocabulary_size

    def output_lengths(self, sample_lengths):
        """Valid output frames `(batch,)` int32 for waveform lengths `(batch,)` in samples."""
        return ctc_output_lengths(sample_lengths, self.frame_length, self.frame_step, self.conv_strides)

    def ctc_loss(self, labels, probs, label_lengths, sample_lengths):
        """Per-example CTC loss for this model's outputs and waveform lengths."""
        return ctc_loss(labels, probs, label_lengths, self.output_lengths(sample_lengths),
                        self.blank_index)

    def decode(self, probs, sample_lengths):
        """Greedy CTC decoding of this model's outputs -> `(batch, max_len)`, -1 padded."""
        return ctc_greedy_decode(probs, self.output_lengths(sample_lengths), self.blank_index)


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "keyword_spotter",
    variants={
        "kws_small": dict(
            num_classes=12, sampling_rate=16000, frame_length=480, frame_step=160,
            fft_length=512, num_mel_bins=40, lower_edge_hertz=20.0, upper_edge_hertz=7600.0,
            filters=(32, 64, 64), dropout=0.25,
        ),
        "kws_tiny": dict(
            num_classes=12, sampling_rate=16000, frame_length=480, frame_step=160,
            fft_length=512, num_mel_bins=40, lower_edge_hertz=20.0, upper_edge_hertz=7600.0,
            filters=(8, 16), dropout=0.1,
        ),
    },
)
class KeywordSpotter(ArgsConfig, keras.Model):
    """Small CNN keyword spotter: waveform `(batch, samples)` float32 -> `LogMelSpectrogram`
    -> `UtteranceNormalization` -> per conv stage Conv2D(3x3) -> BatchNorm -> ReLU -> MaxPool(2) (the last stage
    without pooling) -> global average pool -> Dropout -> Dense(num_classes, softmax,
    float32). Works for any clip length of at least `frame_length` samples.

    Output shape: `(batch, num_classes)` probabilities.
    """

    _ARGS = ("num_classes", *_FRONT_END_ARGS, "filters", "dropout")

    def __init__(self, num_classes=12, sampling_rate=16000, frame_length=480, frame_step=160,
                 fft_length=512, num_mel_bins=40, lower_edge_hertz=20.0,
                 upper_edge_hertz=7600.0, filters=(32, 64, 64), dropout=0.25, name=None,
                 **kwargs):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes}")
        filters = [int(f) for f in filters]
        if not filters or any(f <= 0 for f in filters):
            raise ValueError(f"`filters` must be positive ints. Received: filters={filters}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        p = "kws"
        waveform = keras.Input(shape=(None,), dtype="float32", name="waveform")
        x = LogMelSpectrogram(sampling_rate, frame_length, frame_step, fft_length, num_mel_bins,
                              lower_edge_hertz, upper_edge_hertz, name=f"{p}_log_mel")(waveform)
        x = UtteranceNormalization(name=f"{p}_normalize")(x)
        x = keras.layers.Reshape((-1, num_mel_bins, 1), name=f"{p}_add_channel")(x)
        for i, f in enumerate(filters):
            x = apply_conv_bn_relu_block(x, f, (3, 3), (1, 1), name=f"{p}_conv{i}")
            if i < len(filters) - 1:
                x = keras.layers.MaxPooling2D(2, padding="same", name=f"{p}_pool{i}")(x)
        x = keras.layers.GlobalAveragePooling2D(name=f"{p}_global_pool")(x)
        x = keras.layers.Dropout(dropout, name=f"{p}_dropout")(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                     name=f"{p}_head")(x)
        super().__init__(inputs=waveform, outputs=outputs, name=name, **kwargs)
        self.num_classes = num_classes
        _keep_front_end(self, sampling_rate, frame_length, frame_step, fft_length, num_mel_bins, lower_edge_hertz,
                        upper_edge_hertz)
        self.filters = filters
        self.dropout = dropout


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "matchboxnet",
    variants={
        # MatchboxNet 3x1x64 (Majumdar & Ginsburg 2020): ~80k parameters
        "kws_matchbox": dict(
            num_classes=12, sampling_rate=16000, frame_length=400, frame_step=160, fft_length=512,
            num_mel_bins=64, lower_edge_hertz=20.0, upper_edge_hertz=7600.0,
            prologue=(128, 11), blocks=((64, 13), (64, 15), (64, 17)), repeats=1,
            epilogue=(128, 29, 2), dropout=0.1,
        ),
    },
)
class MatchboxNet(ArgsConfig, keras.Model):
    """A MatchboxNet-style keyword spotter (Majumdar & Ginsburg 2020): waveform `(batch,
    samples)` float32 -> `LogMelSpectrogram` -> `UtteranceNormalization` -> 1-D convolutions
    over time with the mel bins as channels, each time-channel separable (a depthwise
    convolution over time, then a pointwise one) -> BatchNorm -> ReLU:

    * prologue: `prologue = (channels, kernel)`;
    * one residual block per `blocks` entry `(channels, kernel)`: `repeats` separable
      sub-blocks with dropout, the block's input added through a pointwise conv + BatchNorm
      before the last ReLU;
    * epilogue: a separable conv `(channels, kernel, dilation)`, a pointwise conv, then
      global average pooling over time -> Dense(num_classes, softmax, float32).

    With `spec_augment`, `SpecAugment` masks the normalised log-mel in training.

    Output shape: `(batch, num_classes)` probabilities. Works for any clip of at least
    `frame_length` samples.
    """

    _ARGS = ("num_classes", *_FRONT_END_ARGS, "prologue", "blocks", "repeats", "epilogue", "dropout", "spec_augment")

    def __init__(self, num_classes=12, sampling_rate=16000, frame_length=400, frame_step=160,
                 fft_length=512, num_mel_bins=64, lower_edge_hertz=20.0, upper_edge_hertz=7600.0,
                 prologue=(128, 11), blocks=((64, 13), (64, 15), (64, 17)), repeats=1,
                 epilogue=(128, 29, 2), dropout=0.1, spec_augment=False, name=None, **kwargs):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes}")
        prologue, epilogue = tuple(int(v) for v in prologue), tuple(int(v) for v in epilogue)
        blocks = tuple(tuple(int(v) for v in b) for b in blocks)
        if len(prologue) != 2 or len(epilogue) != 3 or not blocks or any(len(b) != 2 for b in blocks) \
                or min(*prologue, *epilogue, *(v for b in blocks for v in b)) <= 0:
            raise ValueError("`prologue` is (channels, kernel), `blocks` [(channels, kernel)], `epilogue` "
                             f"(channels, kernel, dilation), all positive. Received: {prologue}, {blocks}, {epilogue}")
        if not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"`repeats` must be a positive int. Received: repeats={repeats}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        p = "matchbox"

        def separable(x, channels, kernel, name, dilation=1, relu=True):
            x = keras.layers.SeparableConv1D(channels, kernel, padding="same", dilation_rate=dilation,
                                             use_bias=False, name=f"{name}_conv")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
            return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x

        waveform = keras.Input(shape=(None,), dtype="float32", name="waveform")
        x = LogMelSpectrogram(sampling_rate, frame_length, frame_step, fft_length, num_mel_bins,
                              lower_edge_hertz, upper_edge_hertz, name=f"{p}_log_mel")(waveform)
        x = UtteranceNormalization(name=f"{p}_normalize")(x)
        if spec_augment:  # MatchboxNet's: 2 bands of up to 15 of 64 mel bins, 2 spans of up to 10 % of the frames
            x = SpecAugment(freq_mask_width=max(1, num_mel_bins * 15 // 64), time_mask_fraction=0.1,
                            name=f"{p}_spec_augment")(x)
        x = separable(x, *prologue, name=f"{p}_prologue")
        for b, (channels, kernel) in enumerate(blocks):
            skip = keras.layers.Conv1D(channels, 1, use_bias=False, name=f"{p}_block{b}_skip")(x)
            skip = keras.layers.BatchNormalization(momentum=0.9, name=f"{p}_block{b}_skip_bn")(skip)
            for r in range(repeats):
                last = r == repeats - 1
                x = separable(x, channels, kernel, name=f"{p}_block{b}_{r}", relu=not last)
                if last:
                    x = keras.layers.ReLU(name=f"{p}_block{b}_relu")(keras.layers.Add(name=f"{p}_block{b}_add")([x, skip]))
                if dropout:
                    x = keras.layers.Dropout(dropout, name=f"{p}_block{b}_{r}_dropout")(x)
        x = separable(x, epilogue[0], epilogue[1], name=f"{p}_epilogue", dilation=epilogue[2])
        x = keras.layers.Conv1D(epilogue[0], 1, use_bias=False, name=f"{p}_pointwise")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{p}_pointwise_bn")(x)
        x = keras.layers.ReLU(name=f"{p}_pointwise_relu")(x)
        x = keras.layers.GlobalAveragePooling1D(name=f"{p}_global_pool")(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name=f"{p}_head")(x)
        super().__init__(inputs=waveform, outputs=outputs, name=name, **kwargs)
        self.num_classes = num_classes
        _keep_front_end(self, sampling_rate, frame_length, frame_step, fft_length, num_mel_bins, lower_edge_hertz,
                        upper_edge_hertz)
        self.prologue = prologue
        self.blocks = blocks
        self.repeats = repeats
        self.epilogue = epilogue
        self.dropout = dropout
        self.spec_augment = bool(spec_augment)

    def config_value(self, arg):
        if arg == "blocks":
            return [list(b) for b in self.blocks]
        return super().config_value(arg)
