"""`dl-speech`: the speech app's command line (the shared CLI over this app's tasks), plus
`synth` (build the embedded corpus), `transcribe RUN a.wav …` and `listen RUN long.wav`."""

import json
from collections import Counter

import numpy as np

from apps.speech.bench import bench, bench_arguments
from shared.cli import AppCommand, app_main
from shared.data.audio import SAMPLE_RATE, read_wav
from shared.errors import UserError

WINDOW_SECONDS = 15.0  # transcribe: longer files are cut into windows of at most this
QUIET_SEARCH_SECONDS = 3.0  # … at the quietest 50 ms within the window's last seconds


def _synth_arguments(parser):
    parser.add_argument("--hours", type=float, default=4.0, help="corpus size in hours of audio (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="the corpus's seed (default 0)")
    parser.add_argument("--out", default=None, help="directory to write (default: the data cache)")
    parser.add_argument("--workers", type=int, default=2, help="parallel espeak-ng renderers (default 2)")


def _synth(args):
    from apps.speech.synth import read_manifest, synthesize

    if not args.hours > 0:
        raise UserError(f"--hours: expected a positive number of hours; got {args.hours}")
    if args.workers < 1:
        raise UserError(f"--workers: expected at least 1; got {args.workers}")
    directory = synthesize(args.hours, args.seed, out=args.out, workers=args.workers)
    rows = read_manifest(directory)
    hours = Counter()
    for r in rows:
        hours[r["split"]] += float(r["duration"]) / 3600
    print(directory)
    for split in ("train", "val", "test"):
        picked = [r for r in rows if r["split"] == split]
        counts = Counter(r["category"] for r in picked)
        voices = len({r["voice"] for r in picked})
        print(f"{split:5s} {len(picked):6d} utterances {hours[split]:6.2f} h {voices:4d} voices  "
              + " ".join(f"{c}={n}" for c, n in sorted(counts.items())))


def windows(waveform, window=WINDOW_SECONDS, search=QUIET_SEARCH_SECONDS):
    """[(start, end)] sample ranges covering `waveform`, each at most `window` seconds, cut
    at the quietest 50 ms of the last `search` seconds of each window."""
    size, frame = int(window * SAMPLE_RATE), int(0.05 * SAMPLE_RATE)
    out, start = [], 0
    while len(waveform) - start > size:
        tail = waveform[start + size - int(search * SAMPLE_RATE):start + size]
        energy = np.convolve(tail ** 2, np.ones(frame), "valid")
        cut = start + size - int(search * SAMPLE_RATE) + int(np.argmin(energy)) + frame // 2
        out.append((start, cut))
        start = cut
    out.append((start, len(waveform)))
    return out


def _transcribe_arguments(parser):
    parser.add_argument("inputs", nargs="+", metavar="WAV", help="WAV files (any rate, channels and sample format)")
    parser.add_argument("--beam-width", type=int, default=0, help="beam search with this many beams (default: greedy)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per file")


def _transcribe(run, task, cfg, info, args):
    import tensorflow as tf

    from apps.speech.recognition import beam_transcripts, greedy_transcripts
    from shared.training.engine import load_model

    if run.task != "asr":
        raise UserError(f"{run.path}: a {run.task} run; transcribe needs an asr run")
    if args.beam_width < 0:
        raise UserError(f"--beam-width: expected 0 (greedy) or a positive number; got {args.beam_width}")
    waveforms = [read_wav(path) for path in args.inputs]  # every file checked before any work
    model = load_model(run)

    @tf.function(reduce_retracing=True)
    def decode(x):
        probs = model(x, training=False)
        frames = model.output_lengths(tf.fill([tf.shape(x)[0]], tf.shape(x)[1]))
        return beam_transcripts(probs, frames, args.beam_width) if args.beam_width else greedy_transcripts(probs, frames)

    for path, waveform in zip(args.inputs, waveforms):
        parts = [decode(waveform[None, s:e]).numpy()[0].decode() for s, e in windows(waveform)]
        text = " ".join(p for p in parts if p).strip()
        if args.json:
            print(json.dumps({"input": path, "transcript": text, "seconds": round(len(waveform) / SAMPLE_RATE, 2)}))
        else:
            print(f"{path}: {text}")


def _listen_arguments(parser):
    parser.add_argument("input", metavar="WAV", help="a recording of any length")
    parser.add_argument("--threshold", type=float, default=None, help="keyword probability to report (default 0.5)")
    parser.add_argument("--hop", type=float, default=0.25, help="seconds between windows (default 0.25)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per keyword")


def _listen(run, task, cfg, info, args):
    from apps.speech.keywords import LISTEN_THRESHOLD, listen
    from shared.training.engine import load_model

    if run.task != "kws":
        raise UserError(f"{run.path}: a {run.task} run; listen needs a kws run")
    threshold = LISTEN_THRESHOLD if args.threshold is None else args.threshold
    if not 0 < threshold <= 1:
        raise UserError(f"--threshold: expected a probability in (0, 1]; got {threshold}")
    if not 0 < args.hop <= 1:
        raise UserError(f"--hop: expected seconds in (0, 1]; got {args.hop}")
    waveform = read_wav(args.input)
    serving = task.serving_model(load_model(run), info)
    for hit in listen(lambda x: serving(x, training=False), waveform, args.hop, threshold):
        print(json.dumps(hit) if args.json else f"{hit['time']:8.2f}s  {hit['keyword']:6s} {hit['confidence']:.3f}")


COMMANDS = (
    AppCommand("bench", "compare a run with its peer (pocketsphinx) on the same test audio, and time it",
               bench_arguments, bench),
    AppCommand("synth", "build the embedded speech corpus (espeak-ng voices, augmented)", _synth_arguments,
               _synth, on_run=False),
    AppCommand("transcribe", "transcribe WAV files with an asr run", _transcribe_arguments, _transcribe),
    AppCommand("listen", "print the keywords a kws run hears in a long recording", _listen_arguments, _listen),
)


def main(argv=None):
    return app_main("speech", "apps.speech.tasks", argv, commands=COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
