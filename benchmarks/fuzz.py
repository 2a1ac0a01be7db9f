"""Fuzzes `Stylizer.stylize` and an exported SavedModel's signatures with hostile inputs; prints what happened.

python benchmarks/fuzz.py --examples=2000 --seed=0 [--target=both|stylizer|signatures]

The cases are `fuzz_cases`' Hypothesis strategies (tests/test_fuzz.py runs the same with a small budget). Each
target gets a tiny model made here (`build_transformer(num_styles=3, alpha=0.25)`, seeded): a .keras file for the
Stylizer, a SavedModel exported with `max_pixels=SERVING_LIMIT` for the signatures. Printed per target: cases
tried, paints, refusals by error type, crashes (an exception outside the allowed set, or a result of the wrong
kind) with the input that reproduces each, and the peak memory the run added over the loaded model (VmHWM, reset
after the model is loaded and warmed up).

Allowed refusals:
- Stylizer: `ValueError` raised by cin_style's own code (its subclasses `StyleError`, `RegionError`,
  `ImageReadError` included), what `Stylizer.stylize` documents; a `ValueError` raised inside numpy, Pillow or
  Keras is a crash (an input that slipped past the checks).
- Signatures: `tf.errors.InvalidArgumentError`, what the graph's checks raise.
"""

import argparse
import collections
import os
import resource
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzz_cases

#: The exported limit of the fuzzed SavedModel: small, so an accepted request costs a few MiB and the memory
#: bound tells a refusal that decoded or padded first from one that did not.
SERVING_LIMIT = 100_000
STYLE_NAMES = ("hokusai_great_wave", "munch_the_scream", "picabia_udnie")


class Crash(AssertionError):
    """An exception outside the allowed set, or a painting of the wrong kind, for `case`."""


class UndecodableMessage(Crash):
    """The graph refused a request with a message that is not UTF-8 (it quoted the request's bytes): TensorFlow's
    Python raises `UnicodeDecodeError` instead of `InvalidArgumentError`, and a REST client gets no readable error."""


def peak_reset():
    """Resets the kernel's peak-RSS counter (VmHWM) to the current RSS; False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as stream:
            stream.write("5")
        return True
    except OSError:
        return False


def peak_rss():
    """Peak resident memory of this process in bytes (VmHWM, or ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status") as stream:
            for line in stream:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss():
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------------------------ models


def tiny_keras_model(folder):
    """A seeded `build_transformer(3, alpha=0.25)` saved as `folder/model.keras` with styles.json; the path."""
    import json

    import keras

    from cin_style import build_transformer

    keras.utils.set_random_seed(0)
    path = os.path.join(folder, "model.keras")
    build_transformer(len(STYLE_NAMES), alpha=0.25).save(path)
    with open(os.path.join(folder, "styles.json"), "w") as stream:
        json.dump({"style_names": list(STYLE_NAMES)}, stream)
    return path


def tiny_saved_model(folder):
    """A seeded `build_transformer(3, alpha=0.25)` exported under `folder` with `max_pixels=SERVING_LIMIT`."""
    import keras

    from cin_style import build_transformer
    from cin_style.export import export_saved_model

    keras.utils.set_random_seed(0)
    return export_saved_model(
        build_transformer(len(STYLE_NAMES), alpha=0.25), folder, STYLE_NAMES, max_pixels=SERVING_LIMIT
    )


# ------------------------------------------------------------------------------------------------ stylizer


def _expected_size(height, width, max_size):
    """`(height, width)` after `stylize`'s `max_size` downscale (the longer side becomes max_size)."""
    if max_size is None or max(height, width) <= max_size:
        return height, width
    scale = int(max_size) / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _check_painting(image, max_size, result):
    """Raises `Crash` unless `result` is what `stylize` documents for `image` (kind, dtype, shape, range)."""
    from PIL import Image

    if isinstance(image, (Image.Image, fuzz_cases.ImageFile)):
        if not isinstance(result, Image.Image) or result.mode != "RGB":
            raise Crash(f"a PIL or path image gave {type(result).__name__} {getattr(result, 'mode', '')}")
        if isinstance(image, Image.Image):
            width, height = image.size
            if result.size[::-1] != _expected_size(height, width, max_size):
                raise Crash(f"a {width}x{height} PIL image came back {result.size} (max_size={max_size!r})")
        return
    array = np.asarray(image)
    if not isinstance(result, np.ndarray):
        raise Crash(f"an array gave {type(result).__name__}")
    dtype = np.uint8 if array.dtype == np.uint8 else np.float32
    height, width = array.shape[-3:-1] if array.ndim >= 3 else array.shape
    expected = (*array.shape[:1], *_expected_size(height, width, max_size), 3)[(0 if array.ndim == 4 else 1) :]
    if result.dtype != dtype or result.shape != expected:
        raise Crash(
            f"{array.dtype} {array.shape} gave {result.dtype} {result.shape}; expected {dtype.__name__} {expected}"
        )
    if dtype == np.float32 and not (np.isfinite(result).all() and result.min() >= 0.0 and result.max() <= 1.0):
        raise Crash("a float painting holds values outside [0, 1] or NaN")


def _materialise(value, folder, name):
    """`value` with every `ImageFile` (also inside region pairs) written to `folder` and replaced by its path."""
    if isinstance(value, fuzz_cases.ImageFile):
        return value.write(folder, name)
    if isinstance(value, list):
        return [_materialise(v, folder, f"{name}_{i}") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return tuple(_materialise(v, folder, f"{name}_{i}") for i, v in enumerate(value))
    return value


def stylizer_outcome(stylizer, case, folder):
    """Runs one case; `"painted"` or the refused error's type name. Raises `Crash` for anything else."""
    import cin_style

    package = os.path.dirname(cin_style.__file__)
    kwargs = {key: _materialise(value, folder, key) for key, value in case.items()}
    try:
        result = stylizer.stylize(**kwargs)
    except ValueError as error:
        if not fuzz_cases.raised_in(error, package):
            raise Crash(f"ValueError from outside cin_style: {error!r}") from error
        return type(error).__name__
    except Exception as error:
        raise Crash(f"{type(error).__name__}: {error}") from error
    _check_painting(case["image"], case["max_size"], result)
    return "painted"


# ------------------------------------------------------------------------------------------------ signatures


def as_tensors(case):
    """`(name, inputs)` with the inputs as tensors."""
    import tensorflow as tf

    name, inputs = case
    return name, {key: tf.constant(value) for key, value in inputs.items()}


def signature_outcome(loaded, name, inputs):
    """Runs one request; `"painted"` or `"InvalidArgumentError"`. Raises `Crash` for anything else."""
    import io

    import tensorflow as tf
    from PIL import Image

    try:
        output = loaded.signatures[name](**{key: tf.convert_to_tensor(value) for key, value in inputs.items()})
    except tf.errors.InvalidArgumentError:
        return "InvalidArgumentError"
    except UnicodeDecodeError as error:
        raise UndecodableMessage(f"UnicodeDecodeError: {error}; the message ends {error.object[-300:]!r}") from error
    except Exception as error:
        raise Crash(f"{type(error).__name__}: {error}") from error
    (result,) = output.values()
    result = result.numpy()
    if "image_bytes" in inputs:
        files = np.asarray(inputs["image_bytes"])
        if result.shape != files.shape:
            raise Crash(f"{len(files)} files gave {result.shape} outputs")
        for sent, painted in zip(files, result):
            with Image.open(io.BytesIO(sent)) as image_in, Image.open(io.BytesIO(painted)) as image_out:
                if image_out.size != image_in.size or image_out.mode != "RGB":
                    raise Crash(f"a {image_in.size} file came back {image_out.mode} {image_out.size}")
        return "painted"
    image = np.asarray(inputs["image"])
    if result.dtype != image.dtype or result.shape != image.shape:
        raise Crash(f"{image.dtype} {image.shape} gave {result.dtype} {result.shape}")
    if image.dtype == np.float32 and not (np.isfinite(result).all() and 0.0 <= result.min() <= result.max() <= 1.0):
        raise Crash("a float painting holds values outside [0, 1] or NaN")
    return "painted"


# ------------------------------------------------------------------------------------------------ runs


class Tally:
    """Counts of one target's outcomes, crashes with their inputs, and the peak memory added."""

    def __init__(self, target):
        self.target, self.counts, self.crashes = target, collections.Counter(), []
        self.peak_added = None
        #: The highest peak RSS seen, and `(bytes, case)` of the case whose peak rose most over its starting RSS.
        self.highest, self.costliest = 0, (0, None)

    def run(self, strategy, one_case, examples, seed, prepare=None):
        """Runs `examples` cases of `strategy` (Hypothesis, seeded; no shrinking) through `one_case(case)`."""
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as hypothesis_seed

        @hypothesis_seed(seed)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=(Phase.generate,),
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def fuzz(case):
            if prepare is not None:  # e.g. the request's tensors, as a server holds them before the graph runs
                case = prepare(case)
            peak_reset()  # after the case was drawn: what making its inputs took is not the target's
            before = current_rss()
            try:
                self.counts[one_case(case)] += 1
            except Crash as crash:
                self.counts["CRASH"] += 1
                # The crash without its traceback, which would hold the case's inputs alive.
                self.crashes.append((type(crash)(str(crash)), fuzz_cases.short(case, 2000)))
            finally:  # the highest peak over all cases, and the case that rose most over its start
                peak = peak_rss()
                self.highest = max(self.highest, peak)
                if peak - before > self.costliest[0]:
                    self.costliest = (peak - before, fuzz_cases.short(case, 600))

        fuzz()

    def raise_crashes(self):
        """Raises the first crash, its message listing every crash and its input (`UndecodableMessage` where
        every crash is one)."""
        if not self.crashes:
            return
        lines = "\n".join(f"- {type(c).__name__}: {c}\n  input: {case}" for c, case in self.crashes[:10])
        kind = UndecodableMessage if all(isinstance(c, UndecodableMessage) for c, _ in self.crashes) else Crash
        raise kind(f"{len(self.crashes)} of {sum(self.counts.values())} cases crashed ({self.target}):\n{lines}")

    def report(self, seconds):
        tried = sum(self.counts.values())
        refused = {k: v for k, v in sorted(self.counts.items()) if k not in ("painted", "CRASH")}
        print(f"== {self.target}: {tried} cases in {seconds:.0f} s")
        print(f"   painted: {self.counts['painted']}")
        print(f"   refused: {sum(refused.values())} " + ", ".join(f"{k} {v}" for k, v in refused.items()))
        print(f"   crashes: {self.counts['CRASH']}")
        for message, case in self.crashes[:20]:
            print(f"     - {type(message).__name__}: {message}\n       input: {case}")
        if self.peak_added is not None:
            print(f"   peak memory added over the loaded model: {self.peak_added / 2**20:.0f} MiB")
        if self.costliest[1] is not None:
            print(f"   costliest case: +{self.costliest[0] / 2**20:.0f} MiB over its start: {self.costliest[1]}")


def fuzz_stylizer(examples, seed):
    from cin_style import Stylizer

    with tempfile.TemporaryDirectory() as folder:
        stylizer = Stylizer.load(tiny_keras_model(folder), tile_size=48)
        stylizer.stylize(np.zeros((16, 16, 3), np.uint8), 0)
        tally = Tally("Stylizer.stylize (.keras, tile_size=48)")
        peak_reset()
        base = current_rss()
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as cases:
            tally.run(
                fuzz_cases.stylizer_cases(STYLE_NAMES),
                lambda case: stylizer_outcome(stylizer, case, cases),
                examples,
                seed,
            )
        tally.peak_added = max(tally.highest, peak_rss()) - base
        tally.report(time.perf_counter() - start)
    return tally


def fuzz_signatures(examples, seed):
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        loaded = tf.saved_model.load(tiny_saved_model(folder))
        loaded.signatures["serving_default"](
            image=tf.zeros((1, 16, 16, 3), tf.uint8), style_index=tf.zeros((1,), tf.int32)
        )
        tally = Tally(f"SavedModel signatures (max_pixels={SERVING_LIMIT:,})")
        peak_reset()
        base = current_rss()
        start = time.perf_counter()
        tally.run(
            fuzz_cases.signature_cases(len(STYLE_NAMES)),
            lambda case: signature_outcome(loaded, *case),
            examples,
            seed,
            prepare=as_tensors,
        )
        tally.peak_added = max(tally.highest, peak_rss()) - base
        tally.report(time.perf_counter() - start)
    return tally


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="cases per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", choices=("both", "stylizer", "signatures"), default="both")
    args = parser.parse_args(argv)
    tallies = []
    if args.target in ("both", "stylizer"):
        tallies.append(fuzz_stylizer(args.examples, args.seed))
    if args.target in ("both", "signatures"):
        tallies.append(fuzz_signatures(args.examples, args.seed))
    return 1 if any(t.crashes for t in tallies) else 0


if __name__ == "__main__":
    sys.exit(main())
