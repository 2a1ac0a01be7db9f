"""Helpers shared by the command-line tools: errors, --help, and what gets logged."""

import importlib.util
import logging
import os
import sys
import tempfile

from absl import app, flags
from absl import logging as absl_logging

FLAGS = flags.FLAGS

#: Words that ask for a tool's help (absl's `--help`, `--helpshort` and `-?`, and the habitual `-h`).
HELP_WORDS = ("--help", "-help", "--helpshort", "-helpshort", "-?", "--?", "-h")
#: How --verbosity reaches TensorFlow's C++ log (TF_CPP_MIN_LOG_LEVEL: 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR).
_TF_CPP_LEVEL = {0: "0", -1: "1", -2: "2"}


def fail(message):
    """Ends a command-line tool with a one-line error on stderr and exit status 1."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "cin_style"
    print(f"{program}: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def reject_extra_args(argv):
    """absl passes leftover positional words in `argv`; the tools take none."""
    if len(argv) > 1:
        fail(f"Unexpected arguments: {' '.join(argv[1:])}")


def run_tool(main, usage, groups, module_name):
    """Runs a tool's `main` under absl, with a `--help` that lists the tool's own flags.

    absl's `--help` lists the key flags of `__main__`, which for an installed
    console script is a stub defining none. Here `--help` (and `-h`) prints
    `usage`, then each `(title, flag names)` group of `groups` with its
    defaults, then any other flag `module_name` defines; `--helpfull` still
    lists every flag, TensorFlow's and absl's too.
    """

    def parse(argv):
        words = argv[1 : argv.index("--")] if "--" in argv else argv[1:]
        if any(word in HELP_WORDS for word in words):
            try:
                print(help_text(usage, groups, module_name), flush=True)
            except BrokenPipeError:  # `--help | head`: the reader left; nothing more to say
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(0)
        return app.parse_flags_with_usage(argv)

    app.run(main, flags_parser=parse)


def help_text(usage, groups, module_name):
    """The text of a tool's `--help`: `usage`, the grouped flags, then how to see more."""
    module = sys.argv[0] if module_name == "__main__" else module_name  # where absl files __main__'s flags
    groups = [(title, [name for name in names if name in FLAGS]) for title, names in groups]
    grouped = {name for _, names in groups for name in names}
    others = sorted(flag.name for flag in FLAGS.flags_by_module_dict().get(module, []) if flag.name not in grouped)
    sections = [usage.strip("\n")]
    for title, names in [*groups, ("Other flags", others)] if others else groups:
        for name in names:
            FLAGS.register_key_flag_for_module(title, FLAGS[name])
        sections.append(FLAGS.module_help(title))
    note = (
        "TensorFlow's and absl's log lines are hidden: --verbosity=-1 shows their warnings, --verbosity=0 "
        "their INFO lines too. --helpfull lists every flag, TensorFlow's and absl's included."
    )
    sections.append("\n" + flags.text_wrap(note))
    return "\n".join(sections)


def setup_logging(tensorflow=True):
    """Lets a tool print its own lines only, unless --verbosity asks for more; call it before anything
    imports TensorFlow.

    The tool's `cin_style` log (training progress) is shown from INFO up,
    through absl's handler. Without --verbosity, TensorFlow's C++ log is silenced
    (TF_CPP_MIN_LOG_LEVEL=3, unless set in the environment), Python's
    log (TensorFlow's, absl's, JAX's) shows errors only, and the lines
    TensorFlow prints while it loads (twice: two of its libraries log them)
    are held back, and shown only if the import fails. `--verbosity=-1`
    shows warnings, `0` INFO lines too, as absl's flag means.

    Args:
        tensorflow: Import TensorFlow now, quietly: the tool needs it even
            under another Keras backend. Otherwise it is imported only when
            Keras' backend is TensorFlow (KERAS_BACKEND unset or
            "tensorflow"). Defaults to `True`.
    """
    logging.getLogger("cin_style").setLevel(logging.INFO)  # the tool's own progress lines, at any --verbosity
    verbosity = FLAGS["verbosity"].value if "verbosity" in FLAGS and FLAGS["verbosity"].present else None
    if verbosity is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # absl re-applies --verbosity to the root logger now and then: lower the flag itself.
        absl_logging.set_verbosity(absl_logging.ERROR)
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", _TF_CPP_LEVEL.get(max(-2, min(0, verbosity)), "3"))
    tensorflow = tensorflow or os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"
    if tensorflow and "tensorflow" not in sys.modules and importlib.util.find_spec("tensorflow") is not None:
        _import_tensorflow(quiet=verbosity is None or verbosity < 0)


def _import_tensorflow(quiet):
    """Imports TensorFlow; `quiet`: with what it writes to stderr (file descriptor 2) held back."""
    if not quiet:
        import tensorflow

        return
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except Exception:
            failed = True  # shown below; the tool reports the ImportError where it needs TensorFlow
        else:
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        if failed:
            held.seek(0)
            sys.stderr.write(held.read().decode("utf-8", "replace"))


def vgg_weights_or_fail(flag_value):
    """The VGG19 weights a tool's loss needs, found before any work or download; ends the tool if there are none.

    `--vgg_weights` first, then $CIN_STYLE_VGG19_WEIGHTS, then Keras'
    download cache; `--vgg_weights=imagenet` lets Keras download the file
    (80 MB). Without any of these the tool stops at once with one message
    naming both settings, instead of trying a download that a machine
    without internet answers only after a long wait.
    """
    from cin_style.vgg_weights import WEIGHTS_ENV, WEIGHTS_FILE_NAME, keras_cache_path

    how = (
        f"Give a local copy of Keras' {WEIGHTS_FILE_NAME} with --vgg_weights=/path/to/{WEIGHTS_FILE_NAME} or "
        f"{WEIGHTS_ENV}=/path/to/{WEIGHTS_FILE_NAME}, or let Keras download it (80 MB) with --vgg_weights=imagenet."
    )
    if flag_value == "imagenet":
        return flag_value
    for source, value in ((f"--vgg_weights={flag_value}", flag_value), (f"{WEIGHTS_ENV}", os.environ.get(WEIGHTS_ENV))):
        if value:
            path = os.path.abspath(os.path.expanduser(value))
            if not os.path.isfile(path):
                where = source if source.startswith("--") else f"{source}={value}"
                fail(f"VGG19 weights file not found: {path} (from {where}). {how}")
            return path
    cached = keras_cache_path()
    if cached is None:
        fail(
            "The loss needs the VGG19 ImageNet weights and none were found: --vgg_weights is not given, "
            f"{WEIGHTS_ENV} is not set and Keras' cache (~/.keras/models) holds no copy. {how}"
        )
    return cached
