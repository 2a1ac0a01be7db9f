"""Where a painting's time goes, op type by op type: TensorFlow's step statistics of the Stylizer's painting graph.

    python benchmarks/op_profile.py [--model=saved_models/cin_style_slim --precision=bfloat16 --size=512
                                     --threads=2 --jit_compile --nodes=20]

Traces the painting function of `cin_style.precision.network_painters` (the
bfloat16 copy and XLA marks as `Stylizer.load` makes them), freezes its
variables into constants and runs the graph in a `tf.compat.v1.Session` with
full tracing, which records each op's time. Prints the session's median seconds
per painting, then the summed milliseconds per op type (mean over 5 traced runs)
and, with --nodes, the slowest nodes. With --jit_compile, XLA's fused programs
show as `_XlaRun` ops. Uses one private TensorFlow function
(`convert_variables_to_constants_v2`: TensorFlow has no public way to freeze a
`tf.function`'s variables for a Session).
"""

import argparse
import collections
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "saved_models", "cin_style_slim"))
    parser.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--size", type=int, default=512, help="side of the square photo")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow's intra-op threads")
    parser.add_argument("--jit_compile", action="store_true", help="as Stylizer.load(jit_compile=True)")
    parser.add_argument("--nodes", type=int, default=0, help="also list this many slowest nodes")
    parser.add_argument("--runs", type=int, default=5, help="traced runs averaged")
    args = parser.parse_args()
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from cin_style import image_io
    from cin_style.model_io import load_transformer
    from cin_style.precision import network_painters

    model, names, _ = load_transformer(args.model)
    run, _ = network_painters(model, args.precision, args.jit_compile)
    signature = (tf.TensorSpec([1, None, None, 3], tf.float32), tf.TensorSpec([1, len(names)], tf.float32))
    frozen = convert_variables_to_constants_v2(run.tf_function.get_concrete_function(*signature))
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
    photo = image_io.read_image(os.path.join(ROOT, "examples", "parrots.jpg"))
    image = image_io.resize(photo, args.size, args.size).astype(np.float32)[None]
    feed = dict(zip([t.name for t in frozen.inputs], [image, np.eye(len(names), dtype="float32")[[3]]]))
    outputs = [t.name for t in frozen.outputs]
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=2)
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        for _ in range(3):  # warm-up (XLA compiles here)
            session.run(outputs, feed)
        seconds = []
        for _ in range(5):
            start = time.perf_counter()
            session.run(outputs, feed)
            seconds.append(time.perf_counter() - start)
        by_type, counts, by_node = collections.Counter(), collections.Counter(), collections.Counter()
        for _ in range(args.runs):
            metadata = tf.compat.v1.RunMetadata()
            options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
            session.run(outputs, feed, options=options, run_metadata=metadata)
            for device in metadata.step_stats.dev_stats:
                for node in device.node_stats:
                    label = node.timeline_label
                    op_type = label.split("=")[-1].split("(")[0].strip() if "=" in label else node.node_name
                    milliseconds = node.all_end_rel_micros / 1000 / args.runs
                    by_type[op_type] += milliseconds
                    counts[op_type] += 1 / args.runs
                    by_node[node.node_name] += milliseconds
    what = f"{os.path.basename(os.path.normpath(args.model))}, {args.precision}, {args.size} px, {args.threads} threads"
    print(f"{what}{', XLA' if args.jit_compile else ''}: {statistics.median(seconds) * 1e3:.1f} ms per painting")
    print(f"op time {sum(by_type.values()):.1f} ms in {sum(counts.values()):.0f} ops")
    for op_type, milliseconds in by_type.most_common():
        if milliseconds >= 0.1:
            print(f"{op_type:>32} {milliseconds:8.2f} ms  x{counts[op_type]:.0f}")
    for name, milliseconds in by_node.most_common(args.nodes):
        print(f"{name:>72} {milliseconds:8.2f} ms")


if __name__ == "__main__":
    main()
