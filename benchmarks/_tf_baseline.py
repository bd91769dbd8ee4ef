"""The original musicnn on TensorFlow, timed on given excerpts (run in a TF venv).

Called by embed_speed.py as ``TF_VENV/bin/python _tf_baseline.py JOBS.json``.
Uses musicnn's own graph (musicnn.models.define_model) and preprocessing
(librosa at 16 kHz, n_fft 512, hop 256, 96 mels, log10(10000 x + 1)). The graph
is built once and excluded from the timing, and all patches of a file run as
one batch: both favour the baseline over the original extractor, which
rebuilds the graph per file and runs one patch at a time.
"""

import json
import os
import sys
import time

import librosa
import numpy as np
import tensorflow as tf
from musicnn import configuration as config
from musicnn import models

tf.compat.v1.disable_eager_execution()


def main(path):
    spec = json.load(open(path))
    model = spec["model"]
    n_frames = 187
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outs = models.define_model(x, is_training, model, 50)
    fetch = [tf.nn.sigmoid(outs[0])] + ([] if "vgg" in model else list(outs[-3:]))
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(
        sess, os.path.join(os.path.dirname(models.__file__), model) + "/"
    )
    sess.run(fetch, {x: np.zeros((1, n_frames, 96), np.float32), is_training: False})
    t_model = 0.0
    patches = 0
    t0 = time.perf_counter()
    for job in spec["jobs"]:
        batch = []
        for start, length in job["excerpts"]:
            y, _ = librosa.load(job["path"], sr=16000, offset=start, duration=length)
            mel = librosa.feature.melspectrogram(
                y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96, pad_mode="reflect"
            ).T
            logmel = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
            for i in range(len(logmel) // n_frames):
                batch.append(logmel[i * n_frames : (i + 1) * n_frames])
        if not batch:
            continue
        t = time.perf_counter()
        sess.run(fetch, {x: np.stack(batch), is_training: False})
        t_model += time.perf_counter() - t
        patches += len(batch)
    e2e = time.perf_counter() - t0
    print(json.dumps({"model_seconds": t_model, "e2e_seconds": e2e, "patches": patches}))


if __name__ == "__main__":
    main(sys.argv[1])
