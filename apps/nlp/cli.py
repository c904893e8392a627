"""`dl-nlp`: the NLP app's command line (the shared CLI over this app's tasks), plus
`generate RUN "prompt"` (generate runs), `translate RUN "text"` (or stdin lines; translate
runs), `chat RUN` and `bench RUN`: their flags here, their work in the task's module."""

from shared.cli import AppCommand, app_main

SAMPLERS = ("greedy", "top_k", "top_p", "random", "beam")
def _generate_arguments(parser):
    parser.add_argument("prompts", nargs="+", metavar="PROMPT", help="text to continue ('' starts a new document)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="bytes to generate at most (default 200, or what a transformer's context allows)")
    parser.add_argument("--sampler", default="top_p", choices=SAMPLERS, help="keras-hub sampler (default top_p)")
    parser.add_argument("--p", type=float, default=0.9, help="top_p: the probability mass kept (default 0.9)")
    parser.add_argument("--k", type=int, default=40, help="top_k: the tokens kept (default 40)")
    parser.add_argument("--temperature", type=float, default=0.8, help="softmax temperature (default 0.8)")
    parser.add_argument("--num-beams", type=int, default=4, help="beam: beams kept (default 4)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random samplers (default: random)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per prompt instead of streaming")


def _generate(run, task, cfg, info, args):
    from apps.nlp.language_model import generate_command

    generate_command(run, args)


def _translate_arguments(parser):
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="sentences to translate (none: read stdin, "
                        "one sentence per line)")
    parser.add_argument("--beam-size", type=int, default=None, help="beams (default: the run's; 1 = greedy)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per sentence")


def _translate(run, task, cfg, info, args):
    from apps.nlp.translation import translate_command

    translate_command(run, cfg, info, args)


def _chat_arguments(parser):
    parser.add_argument("--once", metavar="MESSAGE", default=None, help="answer one message and exit (for scripts)")
    parser.add_argument("--json", action="store_true", help="with --once: print one JSON line")


def _chat(run, task, cfg, info, args):
    from apps.nlp.chat import chat_command

    chat_command(run, cfg, info, args)


def _bench_arguments(parser):
    parser.add_argument("--orders", default="2,3,4,5,6,7", help="n-gram orders to try on validation (default 2..7)")
    parser.add_argument("--discounts", default="0.1,0.5,0.75", help="Kneser-Ney discounts to try (default 0.1,0.5,0.75)")
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens generated per speed run (default 256; "
                        "a transformer's context minus one at most)")
    parser.add_argument("--latency-sentences", type=int, default=32, help="translate: sentences timed (default 32)")
    parser.add_argument("--tflite-sentences", type=int, default=8, help="translate: sentences through the TFLite "
                        "loop (default 8)")
    parser.add_argument("--questions", default="", help="chat: a question<TAB>corpus message file (default "
                        "tests/data/chat_reworded.tsv)")


def _bench_run(run, task, cfg, info, args):
    from apps.nlp.bench import bench_run

    return bench_run(run, task, cfg, info, args)


COMMANDS = (AppCommand("chat", "talk with a chat run (interactive; --once MESSAGE for scripts)",
                       _chat_arguments, _chat),
            AppCommand("translate", "translate sentences (arguments or stdin lines) with a translate run",
                       _translate_arguments, _translate),
            AppCommand("generate", "continue prompts with a generate run (streams the text)",
                       _generate_arguments, _generate),
            AppCommand("bench", "a generate run vs the Kneser-Ney n-gram peer, a translate run vs Apertium, on "
                       "its test split, and their speed; a chat run vs TF-IDF on reworded questions", _bench_arguments, _bench_run))


def main(argv=None):
    return app_main("nlp", "apps.nlp", argv, commands=COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
