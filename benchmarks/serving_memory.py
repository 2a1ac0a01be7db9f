"""Peak memory of one request through an exported SavedModel's signature, each in a fresh process.

python benchmarks/serving_memory.py saved_models/cin_style_default 1x1000x1000 4x16x16 bytes:photo.png ...

Each request runs in a new Python process: load the SavedModel, one 16x16
warm-up call of the same signature (tracing, thread pools), then the request.
Printed per request: the peak resident memory it added (VmHWM after the
request minus the resident memory before it, an upper bound), the padded
pixels the network processes (each side mirror-padded to a multiple of 4, at
least 8), the bytes per padded pixel, the seconds and the error, if any.
Requests: `BxHxW` (uint8 images through `--signature`, default
`serving_default`; a `*_float` signature gets float32 images) or
`bytes:FILE[,FILE...]` (`stylize_bytes`).
"""

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np, tensorflow as tf

def rss():
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * 4096

model, signature, request = sys.argv[1:4]
loaded = tf.saved_model.load(model)
names = loaded.signatures["style_names"]()["style_names"]
n = int(names.shape[0])
call = loaded.signatures[signature]
spec = call.structured_input_signature[1]

def inputs(b, h, w, files=None):
    args = {}
    if files is not None:
        args["image_bytes"] = tf.constant(files)
    elif spec["image"].dtype == tf.uint8:
        args["image"] = tf.fill([b, h, w, 3], tf.constant(120, tf.uint8))
    else:
        args["image"] = tf.fill([b, h, w, 3], 0.47)
    if "style_index" in spec:
        args["style_index"] = tf.zeros([b], tf.int32)
    elif len(spec["style_weights"].shape) == 2:
        args["style_weights"] = tf.ones([b, n], tf.float32)
    else:
        args["style_weights"] = tf.ones([b, h, w, n], tf.float32)
    return args

if request.startswith("bytes:"):
    from PIL import Image
    import io
    warm = io.BytesIO(); Image.new("RGB", (16, 16), (90, 90, 90)).save(warm, "PNG")
    call(**inputs(1, 16, 16, [warm.getvalue()]))
    files = [open(path, "rb").read() for path in request[6:].split(",")]
    args = inputs(len(files), 0, 0, files)
    sizes = [Image.open(io.BytesIO(f)).size for f in files]
    shape = [(1, h, w) for w, h in sizes]
else:
    call(**inputs(1, 16, 16))
    b, h, w = (int(x) for x in request.split("x"))
    args = inputs(b, h, w)
    shape = [(b, h, w)]
pad = lambda s: max(8, -(-s // 4) * 4)
padded = sum(b * pad(h) * pad(w) for b, h, w in shape)
before = rss()
start = time.perf_counter()
error = None
try:
    call(**args)
except tf.errors.OpError as e:
    error = " ".join(e.message.split())[:300]
seconds = time.perf_counter() - start
with open("/proc/self/status") as stream:  # VmHWM, not ru_maxrss: that starts at the parent's size at fork
    peak = next(int(line.split()[1]) * 1024 for line in stream if line.startswith("VmHWM:"))
print(json.dumps({"request": request, "signature": signature, "padded_pixels": padded, "added_bytes": peak - before,
                  "seconds": round(seconds, 2), "error": error}))
"""


def measure(model, signature, request, timeout=600):
    """One request in a fresh process: a dict of what `CHILD` prints (or the crash)."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, model, signature, request], capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        return {"request": request, "signature": signature, "crash": result.returncode, "stderr": result.stderr[-500:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("requests", nargs="+")
    parser.add_argument("--signature", default="serving_default")
    args = parser.parse_args()
    for request in args.requests:
        signature = "stylize_bytes" if request.startswith("bytes:") else args.signature
        row = measure(args.model, signature, request)
        if "added_bytes" in row:
            row["added_MiB"] = round(row["added_bytes"] / 2**20, 1)
            row["bytes_per_padded_pixel"] = round(row["added_bytes"] / row["padded_pixels"], 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
