"""`dl-nlp`: the NLP app's command line (the shared CLI over this app's tasks), plus
`dl-nlp generate RUN "prompt"` for text-generation runs and `dl-nlp translate RUN "text"`
(or stdin lines) for translate runs."""

import json
import sys
import time

from apps.nlp.bench import bench_arguments, bench_run
from shared.cli import AppCommand, app_main
from shared.errors import UserError

SAMPLERS = ("greedy", "top_k", "top_p", "random", "beam")
DEFAULT_NEW_TOKENS = 200


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


def make_sampler(args):
    """The keras-hub sampler the flags ask for, or a one-line error for a bad value."""
    import keras_hub

    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens: expected a positive number; got {args.max_new_tokens}")
    if args.sampler != "greedy" and not args.temperature > 0:
        raise UserError(f"--temperature: expected a positive number (use --sampler greedy for 0); got {args.temperature}")
    if args.sampler == "greedy":
        return keras_hub.samplers.GreedySampler()
    if args.sampler == "beam":
        if args.num_beams < 1:
            raise UserError(f"--num-beams: expected a positive number; got {args.num_beams}")
        return keras_hub.samplers.BeamSampler(num_beams=args.num_beams, temperature=args.temperature)
    seeded = dict(seed=args.seed, temperature=args.temperature)
    if args.sampler == "top_k":
        if args.k < 1:
            raise UserError(f"--k: expected a positive number; got {args.k}")
        return keras_hub.samplers.TopKSampler(k=args.k, **seeded)
    if args.sampler == "top_p":
        if not 0 < args.p <= 1:
            raise UserError(f"--p: expected a probability in (0, 1]; got {args.p}")
        return keras_hub.samplers.TopPSampler(p=args.p, **seeded)
    return keras_hub.samplers.RandomSampler(**seeded)


class _Stream:
    """Prints a row's new bytes as complete UTF-8 characters, as they are generated."""

    def __init__(self, start, out):
        import codecs

        self.next, self.done, self.out = start, False, out
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __call__(self, ids, index):
        from shared.data.byte_text import END

        row = ids[0].numpy()
        upto = len(row) - 1 if index is None else int(index)
        while not self.done and self.next <= upto:
            token = int(row[self.next])
            self.next += 1
            if token == END:
                self.done = True
            elif 0 < token < 256:
                self.out.write(self.decoder.decode(bytes([token])))
        if index is None:
            self.out.write(self.decoder.decode(b"", final=True))
        self.out.flush()


def _generate(run, task, cfg, info, args):
    """Continues each prompt, streaming the text to the terminal (or one JSON line each)."""
    import tensorflow as tf

    from shared.data.byte_text import encode_graph
    from shared.generation import IncrementalLM, continuation_text, generate_ids
    from shared.training.engine import load_model

    if run.task != "generate":
        raise UserError(f"{run.path}: a {run.task} run; dl-nlp generate needs a generate run")
    sampler = make_sampler(args)
    model = load_model(run)
    context = IncrementalLM.of(model).max_length
    if args.max_new_tokens is None:
        args.max_new_tokens = DEFAULT_NEW_TOKENS if context is None else min(DEFAULT_NEW_TOKENS, context - 1)
    if context is not None and args.max_new_tokens > context - 1:
        raise UserError(f"--max-new-tokens: this model attends over {context} bytes; expected at most {context - 1}")
    for prompt in args.prompts:
        ids = encode_graph(tf.constant([prompt]))
        stream = None
        if not args.json:
            sys.stdout.write(prompt)
            stream = _Stream(int(ids.row_lengths()[0]), sys.stdout) if args.sampler != "beam" else None
        started = time.perf_counter()
        out, lengths, new_lengths = generate_ids(model, ids, args.max_new_tokens, sampler, on_token=stream)
        seconds = time.perf_counter() - started
        continuation = continuation_text(out, lengths, new_lengths).numpy()[0].decode("utf-8")
        if args.json:
            print(json.dumps({"prompt": prompt, "text": prompt + continuation, "continuation": continuation,
                              "new_tokens": int(new_lengths[0]), "sampler": args.sampler,
                              "tokens_per_second": round(int(new_lengths[0]) / seconds, 1)}, ensure_ascii=False))
        else:
            if stream is None:
                sys.stdout.write(continuation)
            sys.stdout.write("\n")
            sys.stdout.flush()


def _translate_arguments(parser):
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="sentences to translate (none: read stdin, "
                        "one sentence per line)")
    parser.add_argument("--beam-size", type=int, default=None, help="beams (default: the run's; 1 = greedy)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per sentence")


def _translate(run, task, cfg, info, args):
    """Translates each argument, or each line of stdin, printing one line per input line."""
    from apps.nlp.translation import Translator
    from shared.training.engine import load_model

    if run.task != "translate":
        raise UserError(f"{run.path}: a {run.task} run; dl-nlp translate needs a translate run")
    beam = cfg.beam_size if args.beam_size is None else args.beam_size
    if beam < 1:
        raise UserError(f"--beam-size: expected a positive number; got {beam}")
    translator = Translator(load_model(run), info.preprocess, beam, cfg.length_penalty)
    lines = args.texts or (line.rstrip("\n") for line in sys.stdin)
    for line in lines:
        started = time.perf_counter()
        text = translator.texts([line])[0] if line.strip() else ""
        if args.json:
            print(json.dumps({"text": line, "translation": text, "beam_size": beam,
                              "ms": round(1000 * (time.perf_counter() - started), 1)}, ensure_ascii=False), flush=True)
        else:
            print(text, flush=True)


def _chat_arguments(parser):
    parser.add_argument("--once", metavar="MESSAGE", default=None, help="answer one message and exit (for scripts)")
    parser.add_argument("--json", action="store_true", help="with --once: print one JSON line")


def _chat(run, task, cfg, info, args):
    """An interactive session: the reply and its score (retrieval: the cosine; generative: the
    mean log-probability per piece) per message; `/reset` forgets the previous turn, `/quit`
    (or Ctrl-D) ends; readline keeps the history."""
    from apps.nlp.chat import Responder
    from apps.nlp.chat_generative import reply_writer
    from apps.nlp.conversations import SEP
    from shared.training.engine import load_model

    if run.task != "chat":
        raise UserError(f"{run.path}: a {run.task} run; dl-nlp chat needs a chat run")
    model = load_model(run)
    generative = cfg.mode == "generative"
    respond = (reply_writer(model, info) if generative
               else Responder(model, info.preprocess, info.extra["saved"]["replies"]).respond)
    score_name = "log-prob/piece" if generative else "score"

    def answer(context):
        out = respond([context])
        return out["reply"].numpy()[0].decode("utf-8"), float(out["score"].numpy()[0])

    if args.once is not None:
        reply, score = answer(args.once)
        print(json.dumps({"message": args.once, "reply": reply, "score": round(score, 4)}, ensure_ascii=False)
              if args.json else reply)
        return
    try:
        import readline  # noqa: F401 -- line editing and history for input()
    except ImportError:
        pass
    print(f"Chatting ({cfg.mode}: {'replies written by the model' if generative else 'the known replies'}); "
          "/reset forgets the conversation, /quit ends.", flush=True)
    previous = None
    while True:
        try:
            message = input("you> ").strip()
        except EOFError:
            print()
            return
        if message == "/quit":
            return
        if message == "/reset":
            previous = None
            print("(conversation reset)", flush=True)
            continue
        if not message:
            continue
        reply, score = answer(f"{previous} {SEP} {message}" if previous else message)
        print(f"bot> {reply}   [{score_name} {score:.3f}]", flush=True)
        previous = reply


COMMANDS = (AppCommand("chat", "talk with a chat run (interactive; --once MESSAGE for scripts)",
                       _chat_arguments, _chat),
            AppCommand("translate", "translate sentences (arguments or stdin lines) with a translate run",
                       _translate_arguments, _translate),
            AppCommand("generate", "continue prompts with a generate run (streams the text)",
                       _generate_arguments, _generate),
            AppCommand("bench", "a generate run vs the Kneser-Ney n-gram peer, a translate run vs Apertium, on "
                       "its test split; and its speed", bench_arguments, bench_run))


def main(argv=None):
    return app_main("nlp", "apps.nlp.tasks", argv, commands=COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
