"""`--sandbox`: the kernel confines itself (Landlock) before the first cell. Each test tries to
get out and checks both what the cell was told and that the file or connection did not happen."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import DATA, EXAMPLES
from support.command_line import gradrepl, records, script
from test_replay import without_addresses

pytestmark = pytest.mark.kernel

REFUSED = "gradrepl: the sandbox refused access to "
ROOT = os.getuid() == 0
# Linux does not apply the process limit to root, so strict mode refuses to start as root; the
# rest of the confinement is the same in both modes (the process limit: as_another_user below).
SANDBOX = "--sandbox=best-effort" if ROOT else "--sandbox"


def sandboxed(tmp_path: Path, *cells: str, extra: tuple[str, ...] = ()) -> list[dict]:
    lesson = tmp_path / "lesson"
    lesson.mkdir(exist_ok=True)
    path = script(lesson, *cells)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "NO_COLOR": "1", "HOME": str(home)}
    run = gradrepl("replay", "--json", "--keep-going", SANDBOX, *extra, str(path), env=env)
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr == ("gradrepl: --sandbox=best-effort: not confined: the process limit (Linux does not apply it to root)\n"
                          if ROOT else ""), run.stderr
    return records(run.stdout)


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _python_for_nobody() -> tuple[str, dict[str, str]]:
    """An interpreter `nobody` can run with this suite's packages: this one, else (a venv whose
    Python lives in root's home) the system's Python of the same version, given its packages."""
    import sysconfig

    # setpriv runs the program it is given with its capabilities still on: that program running
    # itself again (as gradrepl starts its kernel) is what says whether nobody can run it.
    again = "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'import torch, gradrepl'], check=True)"
    if subprocess.run([*NOBODY, sys.executable, "-c", again], capture_output=True, cwd="/").returncode == 0:
        return sys.executable, {}
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    paths = {"PYTHONPATH": os.pathsep.join([sysconfig.get_paths()["purelib"], str(Path(__file__).resolve().parent.parent)])}
    if os.path.exists(system) and subprocess.run([*NOBODY, system, "-c", again], capture_output=True,
                                                 cwd="/", env={**os.environ, **paths}).returncode == 0:
        return system, paths
    pytest.skip("no Python that user nobody can run with this suite's packages")


@contextlib.contextmanager
def as_another_user() -> Iterator[tuple[Path, Callable[..., subprocess.CompletedProcess[str]]]]:
    """A folder, and `gradrepl ARGS` run as a user other than root: as `nobody` (setpriv) when
    the suite runs as root, else as the suite's own user. Its home and state are in the folder."""
    python, paths = _python_for_nobody() if ROOT else (sys.executable, {})
    folder = Path(tempfile.mkdtemp(prefix="gradrepl-sandbox-user-"))
    try:
        folder.chmod(0o777)
        env = {**os.environ, **paths, "NO_COLOR": "1", "HOME": str(folder), "XDG_STATE_HOME": str(folder / "state"),
               "XDG_CONFIG_HOME": str(folder / "config"), "JUPYTER_RUNTIME_DIR": str(folder / "jupyter")}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*(NOBODY if ROOT else []), python, "-m", "gradrepl", *args], capture_output=True, text=True,
                                  cwd=folder, env=env, timeout=300)

        yield folder, run
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_writes_outside_its_folders_are_refused_said_and_never_happen(tmp_path: Path) -> None:
    outside_tmp = Path("/tmp") / f"gradrepl-sandbox-test-{uuid.uuid4().hex}"
    cells = sandboxed(
        tmp_path,
        "open('inside.txt', 'w').write('ok')\nprint(open('inside.txt').read())",
        "open('../parent.txt', 'w').write('no')",
        "import os\nopen(os.path.expanduser('~/home.txt'), 'w').write('no')",
        f"open({str(outside_tmp)!r}, 'w').write('no')",
        "import tempfile\nwith tempfile.NamedTemporaryFile('w', delete=False) as f:\n    f.write('private')\nprint(os.path.exists(f.name))",
        "os.symlink(os.path.abspath('inside.txt'), '../link.txt')",
        "os.link('inside.txt', '../hard.txt')",
        "os.rename('inside.txt', '../moved.txt')",
        "import subprocess\nprint(subprocess.run(['sh', '-c', 'echo x > ~/from-sh.txt'], capture_output=True, text=True).returncode)",
        "pid = os.fork()\nif pid == 0:\n    try:\n        open('../forked.txt', 'w').write('no')\n        os._exit(0)\n    except PermissionError:\n        os._exit(7)\nprint(os.waitpid(pid, 0)[1] >> 8)",
    )
    assert cells[0]["stdout"] == "ok\n"
    for cell in cells[1:4]:
        assert cell["error"]["ename"] == "PermissionError", cell
        assert cell["stderr"].startswith(REFUSED) and "--sandbox-writable DIR" in cell["stderr"]
    assert cells[1]["stderr"].startswith(f"{REFUSED}{tmp_path / 'parent.txt'}: writes are allowed only under {tmp_path / 'lesson'}")
    assert cells[4]["stdout"] == "True\n"  # its own temp folder
    for cell in cells[5:8]:
        assert cell["error"]["ename"] == "PermissionError", cell
    assert cells[8]["stdout"] == "2\n"  # sh: cannot create
    assert cells[9]["stdout"] == "7\n"  # the forked child was refused too
    for name in ("parent.txt", "link.txt", "hard.txt", "moved.txt", "forked.txt"):
        assert not (tmp_path / name).exists(), name
    assert not (tmp_path / "home" / "home.txt").exists() and not (tmp_path / "home" / "from-sh.txt").exists()
    assert not outside_tmp.exists()
    assert (tmp_path / "lesson" / "inside.txt").exists()


def test_a_folder_given_with_sandbox_writable_may_be_written(tmp_path: Path) -> None:
    allowed = tmp_path / "results"
    allowed.mkdir()
    cells = sandboxed(tmp_path, f"open({str(allowed / 'r.txt')!r}, 'w').write('ok')", extra=("--sandbox-writable", str(allowed)))
    assert cells[0]["status"] == "ok" and (allowed / "r.txt").read_text() == "ok"


def test_no_tcp_connection_or_bind_gets_through(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        port = server.getsockname()[1]
        cells = sandboxed(tmp_path, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)",
                          "socket.socket().bind(('127.0.0.1', 0))")
        with pytest.raises(TimeoutError):
            server.accept()  # nothing connected
    assert [c["error"]["ename"] for c in cells] == ["PermissionError", "PermissionError"]
    assert cells[0]["stderr"].startswith("gradrepl: the sandbox refused this network connection")


def test_the_seed_replays_under_it_as_in_jupyter(tmp_path: Path) -> None:
    expected = json.loads((DATA / "seed_autograd.jupyter.json").read_text())
    run = gradrepl("replay", "--json", SANDBOX, str(EXAMPLES / "seed_autograd.py"))
    assert run.returncode == 0, run.stderr
    got = records(run.stdout)
    assert [(g["cell"], without_addresses(g["stdout"]), without_addresses(g["result"]), g["stderr"]) for g in got] == [
        (w["cell"], without_addresses(w["stdout"]), without_addresses(w["result"]), w["stderr"]) for w in expected]


def test_bad_sandbox_options_are_one_line_and_exit_2(tmp_path: Path) -> None:
    path = script(tmp_path, "1")
    for args, line in [
        (("--sandbox-writable", str(tmp_path)), "gradrepl: --sandbox-writable goes with --sandbox\n"),
        (("--sandbox", "--sandbox-writable", str(tmp_path / "nowhere")), f"gradrepl: --sandbox-writable {tmp_path / 'nowhere'}: no such folder\n"),
        (("--sandbox", "--existing", "k.json"), "gradrepl: --sandbox confines a kernel gradrepl starts: not with --existing or --server\n"),
    ]:
        run = gradrepl("replay", *args, str(path))
        assert (run.returncode, run.stderr) == (2, line), args


def test_strict_mode_as_another_user_starts_and_confines(tmp_path: Path) -> None:
    with as_another_user() as (folder, run):
        lesson = folder / "lesson"
        lesson.mkdir()
        lesson.chmod(0o777)
        path = script(lesson, "open('inside.txt', 'w').write('ok')", f"open({str(folder / 'outside.txt')!r}, 'w')",
                      "import resource\nprint(resource.getrlimit(resource.RLIMIT_NPROC)[0] < 100_000)")
        path.chmod(0o644)
        done = run("replay", "--json", "--keep-going", "--sandbox", str(path))
        assert done.stderr == "", done.stderr
        cells = records(done.stdout)
        assert [c["status"] for c in cells] == ["ok", "error", "ok"]
        assert cells[1]["stderr"].startswith(REFUSED) and cells[2]["stdout"] == "True\n"
        assert (lesson / "inside.txt").exists() and not (folder / "outside.txt").exists()


@pytest.mark.skipif(not ROOT, reason="what strict mode says as root: the suite runs as another user")
def test_strict_mode_as_root_refuses_to_start_naming_the_process_limit(tmp_path: Path) -> None:
    run = gradrepl("replay", "--sandbox", str(script(tmp_path, "open('/tmp/should-not-run', 'w')")))
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == ("gradrepl: --sandbox cannot limit processes for root (Linux does not apply RLIMIT_NPROC to uid 0): "
                          "run gradrepl as another user, or --sandbox=best-effort to run without that limit\n")


def test_the_examples_pass_their_lesson_check_under_it(examples_copy: Path) -> None:
    free = gradrepl("check", "-j", "2", str(examples_copy))
    confined = gradrepl("check", "-j", "2", SANDBOX, str(examples_copy))
    assert free.returncode == 0, free.stdout
    assert (confined.returncode, confined.stdout.splitlines()[-1]) == (0, free.stdout.splitlines()[-1])  # "71 passed, 0 failed in 10 files"


FAKE_LANDLOCK = """
class LandlockError(Exception):
    pass

class AccessFs:
    READ_FILE = READ_DIR = WRITE_FILE = TRUNCATE = MAKE_REG = MAKE_DIR = MAKE_SYM = MAKE_SOCK = 1
    MAKE_FIFO = REMOVE_FILE = REMOVE_DIR = REFER = EXECUTE = 1

class Landlock:
    def __init__(self, *args, **kwargs): pass
    def add_path_rule(self, *args, **kwargs): pass
    def apply(self): pass

def get_abi_version():
    return 7
"""


def test_a_module_planted_in_the_scripts_folder_is_not_what_confines_it(tmp_path: Path) -> None:
    lesson = tmp_path / "lesson"
    lesson.mkdir()
    (lesson / "py_landlock.py").write_text(FAKE_LANDLOCK)  # a submission may ship one: it may write there
    (lesson / "json.py").write_text("raise SystemExit('planted json imported')\n")
    outside = tmp_path / f"escaped-{uuid.uuid4().hex}.txt"
    cells = sandboxed(tmp_path, f"open({str(outside)!r}, 'w').write('no')")
    assert cells[0]["error"]["ename"] == "PermissionError" and not outside.exists()


def test_nothing_the_kernel_makes_stands_where_the_front_end_writes(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("kept")
    cells = sandboxed(
        tmp_path,
        "import os, tempfile\nruntime = os.path.dirname(tempfile.gettempdir())\nrefused = []\n"
        f"for make in (lambda: os.symlink({str(victim)!r}, os.path.join(runtime, 'kernel.log.1')),\n"
        "             lambda: os.mkdir(os.path.join(runtime, 'kernel.log.2')),\n"
        "             lambda: open(os.path.join(runtime, 'kernel.json'), 'a')):\n"
        "    try:\n        make()\n    except PermissionError:\n        refused.append(True)\nprint(len(refused))",
    )
    assert cells[0]["stdout"] == "3\n"
    assert victim.read_text() == "kept"


def test_under_check_a_lesson_may_write_in_its_own_folder_and_not_in_another_lessons(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        script(tmp_path / name, f"open('own.txt', 'w').write('ok')\ntry:\n    open('../{'b' if name == 'a' else 'a'}/planted.txt', 'w').write('no')\nexcept PermissionError:\n    print('refused')")
    run = gradrepl("check", "--update", SANDBOX, str(tmp_path))
    assert run.returncode == 0 and "2 files" in run.stdout, run.stdout + run.stderr
    for name in ("a", "b"):
        assert (tmp_path / name / "own.txt").read_text() == "ok"
        assert not (tmp_path / name / "planted.txt").exists()
        assert '"stdout": "refused\\n"' in (tmp_path / name / "cells.expected.jsonl").read_text()
