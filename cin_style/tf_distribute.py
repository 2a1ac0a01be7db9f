"""`tf.distribute` strategies by name: mirrored (local GPUs), multi_worker (TF_CONFIG cluster), tpu.

Every strategy trains on the global batch split over its replicas; the
learning rate is not scaled. TensorFlow only: the JAX engine is
`keras.distribution` (see `cin_style.distribute`).
"""

import json
import os

import tensorflow as tf

#: The names `strategy` accepts (and `cin-style-train --strategy`).
STRATEGIES = ("mirrored", "multi_worker", "tpu")


class DistributeSetupError(ValueError):
    """A strategy cannot be set up here: no TF_CONFIG, no TPU, or an unknown name."""


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy` whose `reduce` takes what Keras 3's `fit` hands it.

    Keras 3's TensorFlow trainer reduces, under a multi-worker strategy, (1)
    the first batch as a whole structure (a dict here; keras-team/keras#20329)
    and (2) every scalar log with `axis=0` (tensorflow/tensorflow#72388). The
    collective `reduce` takes neither, so `fit` fails at its first step. This
    subclass reduces a structure leaf by leaf and a scalar with `axis=None`
    (the same mean); everything else is the stock strategy.
    test_two_workers_train_as_one_device_and_only_the_chief_writes pins it.
    """

    def reduce(self, reduce_op, value, axis):
        def one(leaf):
            rank = self.experimental_local_results(leaf)[0].shape.rank
            return super(MultiWorkerMirroredStrategy, self).reduce(reduce_op, leaf, None if rank == 0 else axis)

        return tf.nest.map_structure(one, value)


def _cluster_from_tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise DistributeSetupError(
            "strategy 'multi_worker' needs TF_CONFIG: the cluster's workers and this process's task, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DistributeSetupError(f"TF_CONFIG is not valid JSON ({error}): {raw[:200]}") from None
    if not isinstance(config, dict) or not config.get("cluster") or not isinstance(config.get("task"), dict):
        raise DistributeSetupError(f"TF_CONFIG needs a 'cluster' and a 'task'. Received: TF_CONFIG={raw[:200]}")
    return config


def tf_strategy(name, tpu=None):
    """The `tf.distribute` strategy called `name` (one of `STRATEGIES`).

    Create it first in the program, before other TensorFlow work (a
    multi-worker strategy must be made before the runtime starts).

    Args:
        name: `"mirrored"`: every local GPU (or the CPU). `"multi_worker"`:
            every worker of the cluster in `TF_CONFIG`; each worker runs the
            same command. `"tpu"`: the TPU at `tpu`.
        tpu: The TPU's name or `grpc://` address for `"tpu"`. Defaults to
            `None`: the TPU of this TPU VM.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        DistributeSetupError: For an unknown name, a missing or malformed
            TF_CONFIG, or no reachable TPU.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        _cluster_from_tf_config()
        return MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            where = f"TPU {tpu!r}" if tpu else "a TPU on this machine (give its name or address with --tpu)"
            raise DistributeSetupError(f"strategy 'tpu': cannot reach {where}: {error}") from None
        return tf.distribute.TPUStrategy(resolver)
    raise DistributeSetupError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}")


def worker_role(strategy):
    """`(is_chief, task_id)` of this process under `strategy`.

    The chief is the task of type "chief", or worker 0 when the cluster has
    no chief (Keras' rule); one-process strategies are their own chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    if task_type in (None, "chief"):
        return True, task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief, task_id


def for_data_split(dataset):
    """`dataset` set to be split into replica batches by example (`AutoShardPolicy.DATA`).

    Every worker builds the same stream of global batches and keeps its
    replicas' share of each batch, so a distributed run sees exactly the
    examples a one-device run sees (file-level sharding would give each
    worker other photos and break resuming).
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
