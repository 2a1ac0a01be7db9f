"""Training throughput on several replicas against one device, per engine, measured in one run.

    python benchmarks/distributed.py [--image_size=128 --batch_size=8 --steps=12]

Trains the same short run (two paintings, photos from a folder, the real
`cin_style.training.train` path) under each engine, each in a fresh process
(devices are fixed when an engine starts):

- tf_one: TensorFlow on its default device.
- tf_mirrored: `tf.distribute.MirroredStrategy` over 2 logical CPU devices.
- tf_multi_worker: `MultiWorkerMirroredStrategy`, 2 worker processes on 127.0.0.1.
- jax_one: JAX on one device.
- jax_data_parallel: `keras.distribution.DataParallel` over 2 host devices
  (`XLA_FLAGS=--xla_force_host_platform_device_count=2`).

Prints images/s (the global batch over the median step time, after the
compiling steps) and, per engine, the ratio of images/s per replica to its
one-device run. On a machine whose CPUs the replicas share, that ratio
measures the cost of splitting the batch, not scaling: each replica gets part
of the same cores. Engines whose backend is missing are skipped.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.environ.get("CIN_STYLE_DATA", os.path.join(ROOT, "..", "shared", "data"))
ENGINES = ("tf_one", "tf_mirrored", "tf_multi_worker", "jax_one", "jax_data_parallel")
STYLES = ("hokusai_great_wave", "munch_the_scream")
VGG_FILE = os.path.join(DATA, "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
if os.path.isfile(VGG_FILE):
    os.environ.setdefault("CIN_STYLE_VGG19_WEIGHTS", VGG_FILE)


def child(args):
    """One engine's run in this process; prints its median images/s as JSON."""
    import logging

    logging.disable(logging.WARNING)
    strategy = None
    if args.engine == "tf_multi_worker":
        from cin_style.tf_distribute import tf_strategy

        strategy = tf_strategy("multi_worker")
    elif args.engine == "tf_mirrored":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    elif args.engine == "jax_data_parallel":
        from cin_style.distribute import data_parallel

        strategy = data_parallel()
    from cin_style.distribute import replicas
    from cin_style.training import TrainConfig, train

    config = TrainConfig(
        styles=[os.path.join(DATA, "styles", f"{name}.jpg") for name in STYLES],
        content=args.content,
        output_dir=args.output_dir,
        image_size=args.image_size,
        batch_size=args.batch_size,
        steps=args.steps,
        checkpoint_every=args.steps,
        style_image_size=args.image_size,
        seed=0,
        tensorboard=False,
    )
    history = train(config, strategy=strategy, verbose=0).history
    timed = [h["images_per_second"] for h in history[args.warmup :]]
    print("RESULT " + json.dumps({"images_per_second": statistics.median(timed), "replicas": replicas(strategy)}))


def run_engine(engine, args, work):
    """Runs `engine` in fresh processes; returns the chief's result, or None when its backend is missing."""
    backend = "jax" if engine.startswith("jax") else "tensorflow"
    if importlib.util.find_spec(backend) is None:
        return None
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    if engine == "jax_data_parallel":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    flags = [f"--{k}={getattr(args, k)}" for k in ("image_size", "batch_size", "steps", "warmup", "content")]
    command = [sys.executable, __file__, f"--engine={engine}", f"--output_dir={os.path.join(work, engine)}", *flags]
    envs = [env]
    if engine == "tf_multi_worker":
        from cin_style.distribute import local_tf_configs

        envs = [{**env, "TF_CONFIG": tf_config} for tf_config in local_tf_configs(2)]
    logs = [os.path.join(work, f"{engine}-{i}.log") for i in range(len(envs))]
    processes = []
    try:
        for log, process_env in zip(logs, envs):  # files, not pipes: a full pipe would stall the collectives
            with open(log, "w") as stream:
                processes.append(subprocess.Popen(command, env=process_env, stdout=stream, stderr=subprocess.STDOUT))
        for process in processes:
            process.wait(timeout=1800)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    with open(logs[0]) as stream:
        out = stream.read()
    if processes[0].returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{out[-3000:]}")
    return json.loads(out.split("RESULT ")[-1].splitlines()[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=8, help="the global batch, split over replicas")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out of the median (compiling)")
    parser.add_argument("--content", default=os.path.join(DATA, "content", "train"))
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--engine", help=argparse.SUPPRESS)  # a child process's engine
    parser.add_argument("--output_dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        child(args)
        return
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for engine in args.engines.split(","):
            results[engine] = run_engine(engine, args, work)
            if results[engine] is not None:
                print(f"{engine:18s} {results[engine]['images_per_second']:7.2f} images/s", flush=True)
    print(
        f"\n{args.image_size}-px crops, global batch {args.batch_size}, median of steps {args.warmup + 1}-{args.steps}"
    )
    print(f"{'engine':18s} {'replicas':>8s} {'images/s':>9s} {'per replica / one device':>25s}")
    for engine, result in results.items():
        if result is None:
            print(f"{engine:18s} skipped (backend not installed)")
            continue
        one = results.get("tf_one" if engine.startswith("tf") else "jax_one")
        ratio = result["images_per_second"] / result["replicas"] / one["images_per_second"] if one else float("nan")
        print(f"{engine:18s} {result['replicas']:8d} {result['images_per_second']:9.2f} {ratio:25.2f}")


if __name__ == "__main__":
    main()
