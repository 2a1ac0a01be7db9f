"""Training over several replicas: tf.distribute (mirrored, multi-worker) and keras.distribution (JAX).

Every test runs the real engine in fresh processes (a multi-worker strategy must exist before
TensorFlow starts; JAX fixes its device count at start), bounded in time, and stops every process it
started, also when it fails. The single-device reference runs the same settings: splitting the global
batch must change nothing but the summation order.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from cli_in_process import run_tool
from helpers import TRAIN_STYLES, assert_same_training, run_cli

from cin_style.distribute import local_tf_configs

#: The run every engine trains: 2 steps over a global batch of 4, checkpoint at each.
SETTINGS = dict(
    image_size=32, batch_size=4, steps=2, checkpoint_every=1, style_image_size=48, alpha=0.25, seed=0, tensorboard=False
)


def _settings(shared_data, photos, output_dir, **overrides):
    styles = [str(shared_data / "styles" / f"{name}.jpg") for name in TRAIN_STYLES]
    return {**SETTINGS, "styles": styles, "content": str(photos), "output_dir": str(output_dir), **overrides}


def _flat(path):
    with np.load(path) as saved:
        return np.concatenate([saved[key].ravel() for key in sorted(saved.files, key=lambda k: int(k.split("_")[1]))])


def _worker_env(tf_config, tmp):
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TF_CONFIG": tf_config, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}


@contextlib.contextmanager
def _started(commands, logs):
    """Starts `(command, env)` pairs with output to `logs`; kills whatever still runs on the way out."""
    processes = []
    try:
        for (command, env), log in zip(commands, logs):
            with open(log, "w") as stream:
                processes.append(subprocess.Popen(command, env=env, stdout=stream, stderr=subprocess.STDOUT))
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for process in processes:
            process.wait()


def _wait_all(processes, logs, seconds):
    deadline = time.time() + seconds
    for process, log in zip(processes, logs):
        try:
            process.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker still running after {seconds} s; its log ends: {log.read_text()[-2000:]}")
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log.read_text()[-3000:]


# --------------------------------------------------------------------------
# TensorFlow: tf.distribute


MIRRORED = r"""
import json, sys, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from cin_style.training import TrainConfig, train
settings, out = json.loads(sys.argv[1]), sys.argv[2]
runs = {}
for name, strategy in (("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])), ("one", None)):
    result = train(TrainConfig(**{**settings, "output_dir": f"{out}/{name}"}), strategy=strategy, verbose=0)
    np.savez(f"{out}/{name}.npz", *result.model.get_weights())
    runs[name] = {"replicas": 1 if strategy is None else strategy.num_replicas_in_sync,
                  "losses": [h["loss"] for h in result.history]}
print(json.dumps(runs))
"""


@pytest.mark.tensorflow_only
def test_two_mirrored_replicas_train_exactly_as_one_on_the_same_global_batch(shared_data, photos, tmp_path):
    # Each replica returns its share (mean / replicas) of the global batch's loss, and each
    # example's style comes with the data, so splitting the batch changes nothing.
    settings = json.dumps(_settings(shared_data, photos, tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, settings, str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    assert runs["two"]["replicas"] == 2 and runs["one"]["replicas"] == 1
    assert_same_training(
        runs["two"]["losses"], _flat(tmp_path / "two.npz"), runs["one"]["losses"], _flat(tmp_path / "one.npz")
    )


WORKER = r"""
import json, logging, sys, numpy as np
logging.basicConfig(level=logging.INFO)
from cin_style.tf_distribute import tf_strategy
strategy = tf_strategy("multi_worker")  # first: before TensorFlow starts
from cin_style.distribute import role
from cin_style.training import TrainConfig, train
settings, weights = json.loads(sys.argv[1]), sys.argv[2]
result = train(TrainConfig(**settings), strategy=strategy, verbose=0)
np.savez(weights, *result.model.get_weights())
print("RESULT " + json.dumps({"chief": role(strategy)[0], "replicas": strategy.num_replicas_in_sync,
                              "losses": [h["loss"] for h in result.history], "model_path": result.model_path}))
"""


@pytest.mark.tensorflow_only
def test_two_workers_train_as_one_device_and_only_the_chief_writes(shared_data, photos, tmp_path):
    from cin_style.training import TrainConfig, latest_checkpoint, load_trained, model_from_checkpoint, train

    run = tmp_path / "run"
    settings = json.dumps(_settings(shared_data, photos, run))
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    commands = [
        (
            [sys.executable, "-c", WORKER, settings, str(tmp_path / f"worker{i}.npz")],
            _worker_env(tf_config, tmp_path / f"tmp{i}"),
        )
        for i, tf_config in enumerate(local_tf_configs(2))
    ]
    with _started(commands, logs) as workers:
        _wait_all(workers, logs, 300)
    results = [json.loads(log.read_text().split("RESULT ")[-1].splitlines()[0]) for log in logs]
    assert [r["chief"] for r in results] == [True, False]
    assert [r["replicas"] for r in results] == [2, 2]
    assert results[0]["losses"] == results[1]["losses"]
    chief, other = _flat(tmp_path / "worker0.npz"), _flat(tmp_path / "worker1.npz")
    np.testing.assert_array_equal(chief, other)  # one all-reduce: the same update on both

    # Only the chief wrote the output folder (a second writer would have met its lock); the other
    # wrote into a temporary folder that is gone, and reports the chief's model.
    assert all(r["model_path"] == str(run / "model.keras") for r in results)
    assert "Worker 1 writes into" in logs[1].read_text()
    assert not [name for name in os.listdir(tmp_path / "tmp1") if name.startswith("cin_style-worker")]
    assert os.path.basename(latest_checkpoint(run)) == "ckpt-00000002"
    model, names = load_trained(run)
    assert names == list(TRAIN_STYLES)
    np.testing.assert_array_equal(np.concatenate([w.ravel() for w in model.get_weights()]), chief)
    restored, _, state = model_from_checkpoint(run)
    assert state["step"] == 2
    np.testing.assert_array_equal(np.concatenate([w.ravel() for w in restored.get_weights()]), chief)

    single = train(TrainConfig(**_settings(shared_data, photos, tmp_path / "single")), verbose=0)
    reference = np.concatenate([w.ravel() for w in single.model.get_weights()])
    assert_same_training(results[0]["losses"], chief, [h["loss"] for h in single.history], reference)


@pytest.mark.tensorflow_only
def test_killed_multi_worker_run_resumes_from_the_chiefs_last_checkpoint(shared_data, photos, tmp_path):
    from cin_style.training import latest_checkpoint

    run = tmp_path / "run"
    styles = ",".join(str(shared_data / "styles" / f"{name}.jpg") for name in TRAIN_STYLES)
    flags = [f"--styles={styles}", f"--content={photos}", f"--output_dir={run}", "--strategy=multi_worker"]
    flags += ["--image_size=32", "--batch_size=4", "--checkpoint_every=2", "--style_image_size=48", "--alpha=0.25"]
    flags += ["--seed=0", "--notensorboard"]
    command = [sys.executable, "-m", "cin_style.cli.train", *flags]

    logs = [tmp_path / f"first{i}.log" for i in range(2)]
    pairs = [
        ([*command, "--steps=100000"], _worker_env(tf_config, tmp_path / f"tmp{i}"))
        for i, tf_config in enumerate(local_tf_configs(2))
    ]
    with _started(pairs, logs) as workers:
        deadline = time.time() + 240
        while latest_checkpoint(run) is None:
            assert all(w.poll() is None for w in workers), [log.read_text()[-2000:] for log in logs]
            assert time.time() < deadline, "no checkpoint within 240 s"
            time.sleep(0.2)
        workers[1].send_signal(signal.SIGKILL)  # a worker dies; the chief is stopped too, as a cluster would
        workers[1].wait()
        workers[0].send_signal(signal.SIGKILL)
    killed_at = int(os.path.basename(latest_checkpoint(run)).split("-")[1])
    assert killed_at >= 2

    logs = [tmp_path / f"second{i}.log" for i in range(2)]
    pairs = [
        ([*command, "--resume", f"--steps={killed_at + 2}"], _worker_env(tf_config, tmp_path / f"tmp{i}"))
        for i, tf_config in enumerate(local_tf_configs(2))
    ]
    with _started(pairs, logs) as workers:
        _wait_all(workers, logs, 300)
    for log in logs:
        assert f"Resuming from {run / 'checkpoints' / f'ckpt-{killed_at:08d}'} (step {killed_at})" in log.read_text()
    assert "Trained 2 styles" in logs[0].read_text()
    assert os.path.basename(latest_checkpoint(run)) == f"ckpt-{killed_at + 2:08d}"
    assert (run / "model.keras").is_file()
    assert not [name for name in os.listdir(tmp_path / "tmp1") if name.startswith("cin_style-worker")]


@pytest.mark.tensorflow_only
def test_strategy_flags_refuse_what_cannot_run_with_one_line(shared_data, photos, tmp_path, monkeypatch, capsys):
    base = [
        f"--styles={shared_data / 'styles' / 'munch_the_scream.jpg'}",
        f"--content={photos}",
        f"--output_dir={tmp_path / 'run'}",
    ]
    cases = [
        (["--strategy=multi_worker"], "needs TF_CONFIG"),
        (["--strategy=tpu"], "cannot reach a TPU on this machine"),
        (["--strategy=mirrored", "--distribution=data_parallel"], "not both"),
        (["--distribution=data_parallel"], "runs under JAX; the Keras backend is 'tensorflow'"),
        (["--tpu=my-tpu"], "--tpu needs --strategy=tpu"),
    ]
    monkeypatch.delenv("TF_CONFIG", raising=False)
    # The first case in a real process (its exit status and stderr); the others call the tool's `main` here,
    # which refuses them the same way without the seconds a fresh process spends importing TensorFlow.
    result = run_cli("cin_style.cli.train", *base, *cases[0][0])
    assert result.returncode == 1, cases[0][0]
    assert cases[0][1] in result.stderr, (cases[0][0], result.stderr[-1500:])
    assert "Traceback" not in result.stderr
    for args, message in cases:
        status, _, stderr = run_tool(capsys, "train", *base, *args)
        assert status == 1, args
        assert message in stderr, (args, stderr[-1500:])
        assert "Traceback" not in stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.tensorflow_only
@pytest.mark.parametrize(
    "tf_config, message",
    [
        ("{'cluster': 1}", "TF_CONFIG is not valid JSON"),
        ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG needs a 'cluster' and a 'task'"),
        ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG needs a 'cluster' and a 'task'"),
        ('["a:1"]', "TF_CONFIG needs a 'cluster' and a 'task'"),
    ],
)
def test_malformed_tf_config_is_refused_naming_what_is_wrong(tf_config, message, monkeypatch):
    from cin_style.tf_distribute import DistributeSetupError, tf_strategy

    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(DistributeSetupError, match=message) as raised:
        tf_strategy("multi_worker")
    assert tf_config[:20] in str(raised.value)


def test_local_tf_configs_give_each_worker_its_index_in_one_cluster_of_free_local_ports():
    configs = [json.loads(value) for value in local_tf_configs(3)]
    cluster = configs[0]["cluster"]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == cluster for c in configs) and list(cluster) == ["worker"]
    hosts = [address.rsplit(":", 1) for address in cluster["worker"]]
    assert {host for host, _ in hosts} == {"127.0.0.1"}
    ports = [int(port) for _, port in hosts]
    assert len(set(ports)) == 3
    for port in ports:  # free: a worker can listen there
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))
    for bad in (0, -1, 2.0, True, "2"):
        with pytest.raises(ValueError, match="`workers` must be a positive integer"):
            local_tf_configs(bad)


def test_train_cli_offers_exactly_the_library_strategies_and_distributions():
    from cin_style.cli import train as train_cli
    from cin_style.distribute import DISTRIBUTIONS

    assert tuple(train_cli.FLAGS["distribution"].parser.enum_values) == DISTRIBUTIONS
    if keras.backend.backend() == "tensorflow":
        from cin_style.tf_distribute import STRATEGIES

        assert tuple(train_cli.FLAGS["strategy"].parser.enum_values) == STRATEGIES


# --------------------------------------------------------------------------
# JAX: keras.distribution


DATA_PARALLEL = r"""
import json, sys, numpy as np, jax, keras
from cin_style.distribute import DistributionError, data_parallel, replicas
from cin_style.training import TrainConfig, train
settings, out = json.loads(sys.argv[1]), sys.argv[2]
two = data_parallel()
runs = {"devices": len(jax.devices())}
try:
    train(TrainConfig(**{**settings, "output_dir": f"{out}/odd", "batch_size": 3}), strategy=two, verbose=0)
except DistributionError as error:
    runs["odd"] = str(error)
for name, strategy in (("two", two), ("one", None)):
    result = train(TrainConfig(**{**settings, "output_dir": f"{out}/{name}"}), strategy=strategy, verbose=0)
    np.savez(f"{out}/{name}.npz", *result.model.get_weights())
    runs[name] = {"replicas": replicas(strategy), "losses": [h["loss"] for h in result.history],
                  "weight_devices": len(result.model.weights[0].value.sharding.device_set),
                  "global_distribution_after": repr(keras.distribution.distribution())}
# cin-style-train --distribution=data_parallel in this process: JAX's device count is fixed at its start.
import contextlib, io
from absl import flags
from cin_style.cli import train as train_cli
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    train_cli.main(flags.FLAGS(["cin-style-train", *json.loads(sys.argv[3])]))
runs["cli"] = printed.getvalue()
print(json.dumps(runs))
"""


@pytest.mark.no_tensorflow
@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution runs under JAX")
def test_data_parallel_over_two_devices_trains_exactly_as_one_device(shared_data, photos, tmp_path):
    xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": xla_flags}
    settings = json.dumps(_settings(shared_data, photos, tmp_path))
    cli_args = (
        ["--distribution=data_parallel", "--steps=1"]
        + [f"--{key}={value}" for key, value in SETTINGS.items() if key not in ("steps", "tensorboard")]
        + [f"--styles={','.join(_settings(shared_data, photos, '')['styles'])}", f"--content={photos}"]
        + [f"--output_dir={tmp_path / 'cli'}", "--notensorboard"]
    )
    result = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL, settings, str(tmp_path), json.dumps(cli_args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    assert runs["devices"] == 2 and runs["two"]["replicas"] == 2 and runs["one"]["replicas"] == 1
    assert runs["two"]["weight_devices"] == 2 and runs["one"]["weight_devices"] == 1  # replicated on both devices
    assert "batch_size 3 does not split over 2 replicas" in runs["odd"]
    assert runs["two"]["global_distribution_after"] == "None"  # the run's distribution does not outlive it
    assert_same_training(
        runs["two"]["losses"], _flat(tmp_path / "two.npz"), runs["one"]["losses"], _flat(tmp_path / "one.npz")
    )
    assert "Trained 2 styles" in runs["cli"] and (tmp_path / "cli" / "model.keras").is_file()
