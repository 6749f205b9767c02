"""Distributed meta-training on tf.distribute gives the single-replica meta-gradients.

Devices are fixed when TensorFlow starts, so every distributed run here is its own process:
`l2l_train --strategy=mirrored --cpu_replicas=2` (two virtual CPUs), two
`--strategy=multi_worker` workers on localhost ports with $TF_CONFIG, and a script that
compares one truncation's all-reduced meta-gradient with per-problem single-replica ones.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_python

pytestmark = pytest.mark.slow  # runs binaries or Python in subprocesses

TINY = ["--num_epochs=3", "--num_steps=20", "--unroll_length=10", "--meta_batch_size=8", "--evaluation_period=3",
        "--evaluation_epochs=1", "--log_period=1", "--seed=4"]
#: Float32 sums in a different order (per-replica means, then their mean) differ in the last bits.
TOLERANCE = 1e-6


def _train(save_path, *extra, env=None):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "bin", "l2l_train.py"), f"--save_path={save_path}",
                             *TINY, *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {})))


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def _phi(path):
    from l2l_tf import saving
    return [v.numpy() for v in saving.load_learned(path).meta_variables]


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("single") / "run")
    _finish(_train(path))
    return path


def test_mirrored_on_two_virtual_cpus_trains_the_same_phi(single, tmp_path):
    path = str(tmp_path / "mirrored")
    _, err = _finish(_train(path, "--strategy=mirrored", "--cpu_replicas=2"))
    assert "2 replicas" in err
    for a, b in zip(_phi(single), _phi(path)):
        np.testing.assert_allclose(a, b, atol=TOLERANCE)
    assert json.load(open(os.path.join(path, "training_summary.json")))["replicas"] == 2


def test_two_multi_worker_processes_train_the_same_phi(single, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    path = str(tmp_path / "multi")
    procs = [_train(path, "--strategy=multi_worker",
                    env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
             for i in range(2)]
    outputs = [_finish(p) for p in procs]
    assert "worker done" in outputs[1][0]  # only the chief writes the run
    for a, b in zip(_phi(single), _phi(path)):
        np.testing.assert_allclose(a, b, atol=TOLERANCE)


MNIST_SCRIPT = r'''
import sys, numpy as np, tensorflow as tf
sys.path.insert(0, ROOT)
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from l2l_tf.meta import MetaTrainConfig, MetaTrainer, meta_gradient
from l2l_tf.optimizers import CoordinatewiseLSTM
from l2l_tf.problems.mnist import MNISTFamily

family = MNISTFamily(batch_size=16, data_dir=FIXTURE)
config = MetaTrainConfig(num_steps=6, unroll_length=3, seed=2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
trainer = MetaTrainer(family, CoordinatewiseLSTM(seed=1), config, strategy=strategy)
problems = {}
def problem(r):
    return problems.setdefault(r, trainer._train_problem(5, r))
opt = trainer.optimizer
args = [trainer._per_replica(lambda r: problem(r).params),
        trainer._per_replica(lambda r: opt.init(problem(r).params, names=problem(r).param_names)),
        trainer._per_replica(lambda r: problem(r).data),
        trainer._per_replica(lambda r: problem(r).batches(0, 4))]
_, _, _, _, meta_loss, grads, _ = trainer._meta_step(family)(*args)
# The same two problems (epoch 5's, functions 10 and 11), one at a time on one replica.
singles = []
for index in (10, 11):
    p = family.sample("train", 2, [index])
    singles.append(meta_gradient(family.loss_and_state, opt, p.params, opt.init(p.params), p.data,
                                 p.batches(0, 4), trainer._weights))
expected = [np.mean([s[5][i].numpy() for s in singles], axis=0) for i in range(len(grads))]
diff = max(float(np.max(np.abs(g.numpy() - e))) for g, e in zip(grads, expected))
scale = max(float(np.max(np.abs(e))) for e in expected)
loss_diff = abs(float(meta_loss) - np.mean([float(s[4]) for s in singles]))
print("RESULT", diff, scale, loss_diff)
'''


def test_a_keras_problem_meta_batch_is_one_problem_per_replica_and_the_gradient_their_mean(tmp_path):
    fixture = os.path.join(ROOT, "testdata", "mnist_subset.npz")
    proc = run_python(f"ROOT = {ROOT!r}\nFIXTURE = {fixture!r}\n" + MNIST_SCRIPT, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    diff, scale, loss_diff = (float(v) for v in proc.stdout.split("RESULT")[1].split())
    assert scale > 1e-4 and diff <= 1e-5 * max(scale, 1.0), (diff, scale)
    assert loss_diff < 1e-4
