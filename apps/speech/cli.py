"""`dl-speech`: the speech app's command line (the shared CLI over this app's tasks), plus
`synth` (build the embedded corpus), `transcribe RUN a.wav …` and `listen RUN long.wav`."""

from shared.cli import AppCommand, app_main


def _synth_arguments(parser):
    parser.add_argument("--hours", type=float, default=4.0, help="corpus size in hours of audio (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="the corpus's seed (default 0)")
    parser.add_argument("--out", default=None, help="directory to write (default: the data cache)")
    parser.add_argument("--workers", type=int, default=2, help="parallel espeak-ng renderers (default 2)")
    parser.add_argument("--mix", default="all", choices=("all", "keywords"),
                        help="all: every category (asr, kws); keywords: one-second clips only (kws) (default all)")


def _synth(args):
    from apps.speech.synth import synth_command

    synth_command(args)


def _transcribe_arguments(parser):
    parser.add_argument("inputs", nargs="+", metavar="WAV", help="WAV files (any rate, channels and sample format)")
    parser.add_argument("--beam-width", type=int, default=0, help="beam search with this many beams (default: greedy)")
    parser.add_argument("--lm", nargs="?", const="english", default="", choices=("english", "train"),
                        help="decode over a word lexicon with the word LM of the run's training transcripts: "
                             "their words and the English library's 50k most frequent (english, the default) "
                             "or theirs alone (train)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per file")


def _transcribe(run, task, cfg, info, args):
    from apps.speech.recognition import transcribe_command

    transcribe_command(run, task, cfg, args)


def _listen_arguments(parser):
    parser.add_argument("input", metavar="WAV", help="a recording of any length")
    parser.add_argument("--threshold", type=float, default=None,
                        help="keyword probability to report (default: the run's, chosen for <= 1 false accept "
                             "per hour on validation audio)")
    parser.add_argument("--hop", type=float, default=0.25, help="seconds between windows (default 0.25)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per keyword")


def _listen(run, task, cfg, info, args):
    from apps.speech.keywords import listen_command

    listen_command(run, task, info, args)


def _bench_arguments(parser):
    parser.add_argument("--limit", type=int, default=0, help="test utterances to use (default: all)")
    parser.add_argument("--val-limit", type=int, default=300,
                        help="validation utterances that choose the word LM's weight (default 300)")
    parser.add_argument("--lexicon", default="english", choices=("english", "train"),
                        help="asr: the lexicon decoder's words: the training transcripts' and the English "
                             "library's 50k most frequent (english), or the transcripts' alone (default english)")
    parser.add_argument("--speed-utterances", type=int, default=50,
                        help="utterances timed at batch 1 for the real-time factors (default 50)")


def _bench(run, task, cfg, info, args):
    from apps.speech.bench import bench

    return bench(run, task, cfg, info, args)


COMMANDS = (
    AppCommand("bench", "compare a run with its peer (pocketsphinx) on the same test audio, and time it",
               _bench_arguments, _bench),
    AppCommand("synth", "build the embedded speech corpus (espeak-ng voices, augmented)", _synth_arguments,
               _synth, on_run=False),
    AppCommand("transcribe", "transcribe WAV files with an asr run", _transcribe_arguments, _transcribe),
    AppCommand("listen", "print the keywords a kws run hears in a long recording", _listen_arguments, _listen),
)


def main(argv=None):
    return app_main("speech", "apps.speech", argv, commands=COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
