"""Where a training run computes and which of its processes writes.

A run takes either engine a user already has: a `tf.distribute.Strategy`
(TensorFlow; made by name in `cin_style.tf_distribute`) or a
`keras.distribution.DataParallel` (JAX; `data_parallel()` here). Either way
the global batch is split over the replicas and the learning rate is used as
given. Of several worker processes only the chief writes into the output
folder; the others write into temporary folders that are removed (Keras'
multi-worker pattern), and read the chief's checkpoints to resume, so the
output folder must be one all workers see (a shared disk or bucket mount).
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile

import keras

logger = logging.getLogger("cin_style")

#: The names `cin-style-train --distribution` accepts (JAX).
DISTRIBUTIONS = ("data_parallel",)


class DistributionError(ValueError):
    """A distribution that cannot run a training job as configured."""


def data_parallel():
    """`keras.distribution.DataParallel` over every visible device (JAX).

    Raises:
        DistributionError: Under another backend than JAX (Keras'
            distribution API runs on JAX), or in a multi-process JAX job.
    """
    backend = keras.backend.backend()
    if backend != "jax":
        raise DistributionError(
            f"`keras.distribution` data parallelism runs under JAX; the Keras backend is {backend!r}. "
            "Set KERAS_BACKEND=jax, or under TensorFlow use a tf.distribute strategy (--strategy)."
        )
    return keras.distribution.DataParallel(devices=keras.distribution.list_devices())


def local_tf_configs(workers):
    """`TF_CONFIG` values for a multi-worker run of `workers` processes on this machine.

    Each worker listens on a free port of 127.0.0.1; process i runs with the
    i-th value in its environment. For trying `--strategy=multi_worker` (and
    testing it) on one machine; a cluster of machines lists their addresses.

    Returns:
        A list of JSON strings, one per worker, in task-index order.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"`workers` must be a positive integer. Received: workers={workers!r}")
    sockets = [socket.socket() for _ in range(workers)]
    try:
        for one in sockets:
            one.bind(("127.0.0.1", 0))
        addresses = [f"127.0.0.1:{one.getsockname()[1]}" for one in sockets]
    finally:
        for one in sockets:
            one.close()
    cluster = {"worker": addresses}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(workers)]


def _is_keras_distribution(strategy):
    # DataParallel only: it replicates every variable and splits the batch over all its devices,
    # which `replicas` and the single data stream assume.
    return isinstance(strategy, keras.distribution.DataParallel)


def replicas(strategy):
    """How many replicas share each global batch (1 without a strategy)."""
    if strategy is None:
        return 1
    if _is_keras_distribution(strategy):
        return int(strategy.device_mesh.devices.size)
    return int(strategy.num_replicas_in_sync)


def _processes(strategy):
    if strategy is None:
        return 1
    if _is_keras_distribution(strategy):
        import jax

        return jax.process_count()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or getattr(resolver, "task_type", None) is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(tasks) for kind, tasks in spec.items() if kind in ("chief", "worker"))


def role(strategy):
    """`(is_chief, task_id)` of this process: only the chief writes into the output folder."""
    if strategy is None:
        return True, 0
    if _is_keras_distribution(strategy):
        import jax

        return jax.process_index() == 0, jax.process_index()
    from cin_style.tf_distribute import worker_role

    return worker_role(strategy)


def check(strategy, config):
    """Refuses settings a distributed run cannot honour, before any work starts.

    Raises:
        DistributionError: A batch that does not split evenly over the
            replicas, `max_minutes` with several workers (each would stop by
            its own clock and leave the others waiting), or a multi-process
            JAX job (each process would feed the whole global batch).
        TypeError: For something that is neither engine's object.
    """
    if strategy is None:
        return
    if not _is_keras_distribution(strategy) and not hasattr(strategy, "num_replicas_in_sync"):
        raise TypeError(
            "`strategy` must be a tf.distribute.Strategy or a keras.distribution.DataParallel. "
            f"Received: strategy={type(strategy).__name__}"
        )
    count = replicas(strategy)
    if config.batch_size % count:
        raise DistributionError(
            f"batch_size {config.batch_size} does not split over {count} replicas: the global batch is divided "
            f"evenly among them, so use a multiple of {count}"
        )
    processes = _processes(strategy)
    if processes > 1 and config.max_minutes is not None:
        raise DistributionError(
            f"max_minutes with {processes} workers: each would stop by its own clock and leave the others "
            "waiting; give steps instead"
        )
    if processes > 1 and _is_keras_distribution(strategy):
        raise DistributionError(
            f"A {processes}-process JAX job is not supported: every process would feed the whole global batch. "
            "Use one process per machine with all its devices, or TensorFlow's multi_worker strategy"
        )


def run_scope(strategy):
    """The context a whole run (build and `fit`) runs in: a Keras distribution is global state."""
    if _is_keras_distribution(strategy):
        return strategy.scope()
    return contextlib.nullcontext()


def build_scope(strategy):
    """The context a run's variables are made in: a `tf.distribute` strategy's scope mirrors them."""
    if strategy is not None and not _is_keras_distribution(strategy):
        return strategy.scope()
    return contextlib.nullcontext()


def uses_tf_distribute(strategy):
    """Whether `fit` will split `tf.data` input over `strategy`'s replicas."""
    return strategy is not None and not _is_keras_distribution(strategy)


@contextlib.contextmanager
def writable_dir(output_dir, strategy):
    """The folder this process writes into: `output_dir` for the chief, else a temporary one removed at the end.

    Non-chief workers still write everything (a save may need every worker
    to take part), but into a folder that goes away, so the output folder
    holds one run's files, the chief's. The folder is named for the worker
    and the output folder, so a restarted worker first removes what its
    killed predecessor left there.
    """
    chief, task_id = role(strategy)
    if chief:
        yield output_dir
        return
    key = hashlib.sha1(os.path.abspath(output_dir).encode()).hexdigest()[:12]
    folder = os.path.join(tempfile.gettempdir(), f"cin_style-worker{task_id}-{key}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    logger.info("Worker %d writes into %s (removed at the end); the chief writes %s", task_id, folder, output_dir)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
