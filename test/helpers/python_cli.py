"""One long-lived Python process that runs Debian's OpenStack CLIs (`openstack`, `neutron`,
`glance`) through their own console-script entry points, and test/fullstack/openstack_sdk.py
as a script, one command after another, so a
test pays the clients' import and plugin-scan cost (about a second each time on the
project's machines) once per worker instead of once per command.

Protocol: one JSON request per line on stdin, {"prog", "argv", "env"}; one JSON answer per
line, {"code", "stdout", "stderr"}, on the stdout this process had when it started.

Invariant: each command runs as if it were a fresh process of its console script: its
environment is exactly the one asked for, its argv[0] is the script's name, its stdin is
empty, its stdout and stderr are captured apart, its exit code is the script's (a
SystemExit's code, or 1 with the traceback for an uncaught exception), and the logging
handlers, logger levels and warning filters a command installs are undone before the
next one.
"""

import contextlib
import importlib
import io
import json
import logging
import os
import runpy
import sys
import traceback
import warnings

ENTRY_POINTS = {
    "openstack": ("openstackclient.shell", lambda m, argv: m.main(argv)),
    "neutron": ("neutronclient.shell", lambda m, argv: m.main(argv)),
    "glance": ("glanceclient.shell", lambda m, argv: m.main()),
    "openstack_sdk.py": ("openstack.connection", lambda m, argv: run_script(SDK_SCRIPT)),
}
SDK_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fullstack", "openstack_sdk.py")


def run_script(path):
    """A script as `python3 path` runs it: its own module namespace, __name__ == "__main__"."""
    runpy.run_path(path, run_name="__main__")


class Pristine:
    """The interpreter-wide state a command may change, as it was before any command."""

    def __init__(self):
        self.handlers = list(logging.getLogger().handlers)
        self.levels = {
            name: logger.level
            for name, logger in logging.Logger.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)
        }
        self.root_level = logging.getLogger().level
        self.filters = list(warnings.filters)

    def restore(self):
        root = logging.getLogger()
        for handler in list(root.handlers):
            if handler not in self.handlers:
                root.removeHandler(handler)
        root.setLevel(self.root_level)
        for name, logger in logging.Logger.manager.loggerDict.items():
            if isinstance(logger, logging.Logger):
                logger.setLevel(self.levels.get(name, logging.NOTSET))
        warnings.filters[:] = self.filters
        warnings._filters_mutated()


def captured():
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)


def text(stream):
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", errors="replace")


def named(prog):
    """cliff names its App from sys.argv[0] once, when first imported: name it per command."""
    sys.argv = [prog]
    app = sys.modules.get("cliff.app")
    if app is not None:
        app.App.NAME = prog
        app.App.LOG = logging.getLogger(prog)


def run(request, state):
    module_name, call = ENTRY_POINTS[request["prog"]]
    state["pristine"].restore()
    named(request["prog"])
    if module_name not in sys.modules:
        importlib.import_module(module_name)
        state["pristine"] = Pristine()
    module = sys.modules[module_name]
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [request["prog"], *request["argv"]]
    out, err = captured(), captured()
    code = 0
    with open(os.devnull) as empty, contextlib.redirect_stdout(out), contextlib.redirect_stderr(
        err
    ):
        sys.stdin = empty
        try:
            code = call(module, list(request["argv"]))
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdin = sys.__stdin__
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=err)
        code = 1
    return {"code": code, "stdout": text(out), "stderr": text(err)}


def main():
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    state = {"pristine": Pristine()}
    for line in requests:
        answers.write(json.dumps(run(json.loads(line), state)) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
