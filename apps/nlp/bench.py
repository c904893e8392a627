"""`dl-nlp bench RUN`: a generate run against its peer on the same split, and its speed.

- Quality: bits per character on the run's test documents, beside nltk's interpolated
  Kneser-Ney character model at the order and discount best on the validation documents
  (both score each document from its start; characters, not tokens, so the figures compare).
- Speed: new tokens per second of greedy generation at batch 1 and 8, with the KV cache
  and recomputing the whole prefix every step, each as one compiled graph (as the
  SavedModel runs it), best of `rounds`.
"""

import json
import time

from shared.errors import UserError


def generation_speed(model, new_tokens, batch_sizes=(1, 8), rounds=2):
    """{"batch_{n}_{cached|uncached}": tokens per second} of greedy generation from an empty prompt."""
    import tensorflow as tf

    from shared.data.byte_text import encode_graph
    from shared.generation import SignatureSampler, generate_ids

    result = {}
    for batch in batch_sizes:
        prompts = tf.constant([""] * batch)
        for cached in (True, False):
            run = tf.function(lambda p, cached=cached: generate_ids(model, encode_graph(p), new_tokens, SignatureSampler(),
                                                                    cached=cached, stop_at_end=False)[2])
            run(prompts)  # trace
            best = 0.0
            for _ in range(rounds):
                started = time.perf_counter()
                generated = int(tf.reduce_sum(run(prompts)))
                best = max(best, generated / (time.perf_counter() - started))
            result[f"batch_{batch}_{'cached' if cached else 'uncached'}"] = best
    return result


def bench_arguments(parser):
    parser.add_argument("--orders", default="2,3,4,5,6,7", help="n-gram orders to try on validation (default 2..7)")
    parser.add_argument("--discounts", default="0.1,0.5,0.75", help="Kneser-Ney discounts to try (default 0.1,0.5,0.75)")
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens generated per speed run (default 256; "
                        "a transformer's context minus one at most)")


def _numbers(text, flag, kind):
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values:
        raise UserError(f"{flag}: expected a comma list of numbers; got '{text}'")
    return values


def bench_generate(run, task, cfg, info, args):
    """Prints the side-by-side table and one JSON line; records it in metrics.json as "bench"."""
    import numpy as np

    from apps.nlp.documents import load_documents
    from apps.nlp.peers import kneser_ney_peer
    from shared.generation import IncrementalLM
    from shared.training import engine

    if run.task != "generate":
        raise UserError(f"{run.path}: a {run.task} run; dl-nlp bench compares generate runs")
    orders = _numbers(args.orders, "--orders", int)
    discounts = _numbers(args.discounts, "--discounts", float)
    if min(orders) < 1 or not all(0 <= d <= 1 for d in discounts):
        raise UserError("--orders: expected orders >= 1; --discounts: expected values in [0, 1]")
    metrics = engine.read_metrics(run)
    if "bits_per_char" not in metrics.get("test", {}):
        raise UserError(f"{run.path}: no test bits_per_char in metrics.json; run `dl-nlp evaluate {run.path}` first")
    model = engine.load_model(run)
    context = IncrementalLM.of(model).max_length
    new_tokens = min(args.new_tokens, context - 1) if context else args.new_tokens
    splits, _ = load_documents(cfg)
    print(f"n-gram peer on {cfg.data}: {len(splits['train'])} training, {len(splits['val'])} validation, "
          f"{len(splits['test'])} test documents", flush=True)
    peer = kneser_ney_peer(splits["train"], splits["val"], splits["test"], orders, discounts)
    print(f"Generation speed ({new_tokens} new tokens, greedy, compiled):", flush=True)
    speed = generation_speed(model, new_tokens)
    ours = metrics["test"]["bits_per_char"]
    result = {"bits_per_char": ours, "kneser_ney_bits_per_char": peer["bits_per_char"],
              "kneser_ney_order": peer["order"], "kneser_ney_discount": peer["discount"],
              "kneser_ney_val_bits_per_char": peer["val_bits_per_char"],
              "unigram_bits_per_char": metrics["test"].get("unigram_bits_per_char"),
              "new_tokens": new_tokens, "tokens_per_second": speed}
    print(f"Bits per character on the {len(splits['test'])} test documents ({peer['num_chars']:,} characters):")
    print(f"  {cfg.model:34s} {ours:.4f}")
    print(f"  {'Kneser-Ney (nltk), order ' + str(peer['order']) + ', d ' + str(peer['discount']):34s} "
          f"{peer['bits_per_char']:.4f}")
    print(f"  {'unigram (training bytes)':34s} {result['unigram_bits_per_char']:.4f}")
    for key, value in speed.items():
        print(f"  {key.replace('_', ' '):22s} {value:10.1f} tokens/s")
    print(f"  KV cache speed-up: batch 1 x{speed['batch_1_cached'] / speed['batch_1_uncached']:.2f}, "
          f"batch 8 x{speed['batch_8_cached'] / speed['batch_8_uncached']:.2f}")
    metrics["bench"] = json.loads(json.dumps(result, default=lambda v: float(np.asarray(v))))
    engine.write_metrics(run, metrics)
    print(json.dumps(metrics["bench"]))
