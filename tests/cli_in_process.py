"""Runs a command-line tool's `main` in the test's own process: no `python -m` that imports TensorFlow again.

The tools define flags of the same names (--model in add_style, export and stylize; --style_names in train
and export; ...), so two of them never share a process; imported into one, the second fails with
DuplicateFlagError. `run_tool` sets aside the flags of any tool already imported here (by another test, on this
pytest worker), imports the tool afresh, parses the arguments as the tool's own `run` does
(`app.parse_flags_with_usage`: an unknown flag prints absl's message and exits 1) and runs its `main`; then it
puts the flags and modules back as they were. Use it where a test is about what the tool does, not about
the process (the installed entry point, a real exit, a kill): those keep a real subprocess.
"""

import importlib
import logging
import sys

from absl import app, flags

FLAGS = flags.FLAGS
_PREFIX = "cin_style.cli."
_SHARED = ("cin_style.cli._common",)  # defines no flags; stays imported


def _tool_modules():
    return {name: module for name, module in sys.modules.items() if name.startswith(_PREFIX) and name not in _SHARED}


def _remove_tool_flags():
    """Takes the flags the tools defined out of FLAGS; `[(module name, flag)]`."""
    removed = []
    for module_name, module_flags in FLAGS.flags_by_module_dict().items():
        if module_name.startswith(_PREFIX):
            removed += [(module_name, flag) for flag in module_flags]
    for name in {flag.name for _, flag in removed}:
        if name in FLAGS:
            delattr(FLAGS, name)
    return removed


def run_tool(capsys, tool, *args, defaults=None):
    """Runs `cin_style.cli.<tool>`'s `main` with `args`: `(exit status, stdout, stderr)`, as absl's `app.run` would.

    The status is what `main` returns (0 for None) or the code of the SystemExit it raises (`fail` raises
    SystemExit(1); a SystemExit with a message prints it and counts as 1). Any other exception propagates and
    fails the test, as a traceback would. `sys.argv` holds the command line while it runs (`fail` names the
    program from it) and the log levels the tool sets for itself (`setup_logging`) are put back after.

    `defaults`: flag defaults the tool's `run` sets before parsing (add_style's ADD_STYLE_DEFAULTS), by the
    name of the module attribute that holds them.
    """
    import cin_style.cli as package

    def leaf(name):
        return name.rsplit(".", 1)[1]

    def forget_tools():
        for name in _tool_modules():
            del sys.modules[name]
            if hasattr(package, leaf(name)):
                delattr(package, leaf(name))

    program = f"cin-style-{tool.replace('_', '-')}"
    loggers = {name: logging.getLogger(name).level for name in ("cin_style", "tensorflow", "absl")}
    argv = sys.argv
    was_parsed = FLAGS.is_parsed()
    saved_modules = _tool_modules()
    saved_attributes = {name: getattr(package, leaf(name), None) for name in saved_modules}
    saved_flags = _remove_tool_flags()
    forget_tools()
    try:
        module = importlib.import_module(_PREFIX + tool)
        for name, value in (getattr(module, defaults) if defaults else {}).items():
            FLAGS.set_default(name, value)
        capsys.readouterr()
        sys.argv = [program, *map(str, args)]
        try:
            status = module.main(app.parse_flags_with_usage(sys.argv))
        except SystemExit as stop:
            status = stop.code
        out, err = capsys.readouterr()
        if status is None:
            status = 0
        elif not isinstance(status, int):  # SystemExit("message"): Python prints it and exits 1
            err, status = err + f"{status}\n", 1
        return status, out, err
    finally:
        sys.argv = argv
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)
        FLAGS.unparse_flags()
        _remove_tool_flags()
        forget_tools()
        sys.modules.update(saved_modules)
        for name, attribute in saved_attributes.items():
            if attribute is not None:
                setattr(package, leaf(name), attribute)
        for module_name, flag in saved_flags:
            if flag.name not in FLAGS:
                FLAGS[flag.name] = flag
            FLAGS.register_flag_by_module(module_name, flag)
            if module_name in saved_modules:
                FLAGS.register_flag_by_module_id(id(saved_modules[module_name]), flag)
        if was_parsed:
            FLAGS.mark_as_parsed()
