"""Fault injection: kill -9 or SIGSTOP each process role at seeded random points.

Roles: ``databases_provider``, ``execute``, ``loop_execute`` (the scripts) and
``runner`` (``beat-backend run`` itself), on the bundled experiments
``example/example/two_classes/1/linear_small`` and
``example/example/threshold_loop/1/tune`` in a tmp copy of the example prefix.
Each trial starts from a copy of a warm cache where a seeded random subset of
blocks (holding one that starts the role) has been removed, runs
``beat-backend run`` with ``TMPDIR`` inside the trial folder (and
``BEAT_BACKEND_DEADLINE=2`` for SIGSTOP trials), waits for the role's
``k``-th process (seeded; the runner: while its ``k``-th ``execute`` runs)
and signals it a seeded random delay later.

The signal must be proven to hit: the target is first frozen (SIGSTOP) and
must be seen in the stopped state, which a process that already exited
cannot enter; a kill trial then sends SIGKILL. A target that ended before
(a miss) is retried on the role's next process, at sight; a run that ended
without a hit is retried (``MAX_ATTEMPTS`` runs, the later ones signalling
the first process at sight), and a trial that never hits fails. Then:

* the surviving processes of the disturbed run exit — within 10 s of a kill,
  within the deadline (+ 2 s for their remaining work and teardown) of a stop —
  and a block that failed reports a *system* error; a killed runner died of
  the SIGKILL;
* no process whose command line mentions the trial folder remains (psutil);
* no output of a failed block is left, no cache file set is corrupt, and only
  a killed runner (which cannot clean up) may leave an incomplete one;
* rerunning the experiment completes with the results of an undisturbed run.

The default suite runs one trial per role and signal; ``pytest -m slow``
runs ``FAULT_TRIALS`` (default 25) seeded trials per role and signal (50 per
role), or a seeded sample of them: ``BEAT_RELIABILITY_SAMPLE=<n>`` per role
and signal (conftest.py; CI). Each trial's figures (with its attempts and
misses) are appended to ``$BEAT_RELIABILITY_LOG`` (JSON lines) when set, and
the hit rate per role and signal at the end of the module:
``scripts/reliability_report.py`` builds the README's tables from it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from _corpus import copy_example_prefix

import beat_backend
from beat_backend._cache import maintenance
from beat_backend._execution import planner

LINEAR = "example/example/two_classes/1/linear_small"
TUNE = "example/example/threshold_loop/1/tune"
ROLES = ("databases_provider", "execute", "loop_execute", "runner", "fork_server")
FORK_SERVER = "beat_backend._execution.forkserver"
SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}
DEADLINE = 2.0
#: survivors of a kill must be gone within this (issue 8)
KILL_BOUND = 10.0
#: survivors of a stop: the deadline, plus the work they still had and their teardown
STOP_BOUND = DEADLINE + 2.0
REPO = Path(beat_backend.__file__).resolve().parent.parent
SLOW_TRIALS = int(os.environ.get("FAULT_TRIALS", "25"))
#: runs of one trial until its signal hits a live process (else the trial fails)
MAX_ATTEMPTS = 3


def environment(trial: Path, deadline: float | None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TMPDIR"] = str(trial / "tmp")  # the scripts' folders: their command lines name it
    env.pop("BEAT_BACKEND_DEADLINE", None)
    if deadline is not None:
        env["BEAT_BACKEND_DEADLINE"] = f"{deadline:g}"
    return env


def run_command(prefix: Path, cache: Path, experiment: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "beat_backend._cli.main",
        "run",
        "--prefix",
        str(prefix),
        "--cache",
        str(cache),
        *extra,
        experiment,
    ]


# -- the warm cache and the undisturbed results ----------------------------------------------


@dataclasses.dataclass
class Baseline:
    prefix: Path
    cache: Path
    results: dict  # experiment -> analyzer results of an undisturbed run
    plans: dict  # experiment -> planner.Plan (on the warm cache: everything cached)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Baseline:
    base = tmp_path_factory.mktemp("faults_baseline")
    prefix = copy_example_prefix(base / "prefix")
    cache = base / "cache"
    (base / "tmp").mkdir()
    results = {}
    for experiment in (LINEAR, TUNE):
        done = subprocess.run(
            run_command(prefix, cache, experiment, "--json"),
            env=environment(base, None),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        results[experiment] = json.loads(done.stdout)["results"]
    plans = {e: planner.plan(str(prefix), e, str(cache)) for e in (LINEAR, TUNE)}
    return Baseline(prefix, cache, results, plans)


# -- one trial ----------------------------------------------------------------------------------


def _is_role(process: psutil.Process, role: str) -> bool:
    """A subprocess of the role (its command line), or a child of the fork server that named
    itself after its script (``comm``: 15 characters)."""
    try:
        if role == "fork_server":
            return FORK_SERVER in " ".join(process.cmdline())
        if f"beat_backend.scripts.{role}" in " ".join(process.cmdline()):
            return True
        return _comm(process) == role[:15] and _is_role(process.parent(), "fork_server")
    except (psutil.Error, AttributeError, OSError):  # (gone meanwhile)
        return False


def _comm(process: psutil.Process) -> str:
    with open(f"/proc/{process.pid}/comm", encoding="utf-8", errors="replace") as f:
        return f.read().strip()


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(process: psutil.Process) -> str:
    try:
        script = next((a for a in process.cmdline() if a.startswith("beat_backend.")), "?")
        if script == FORK_SERVER and not _is_role(process, "fork_server"):
            script = _comm(process)
        return f"{process.pid} {script} ({process.status()})"
    except (psutil.Error, OSError):
        return f"{process.pid} (gone)"


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _mentioning(folder: Path) -> list[psutil.Process]:
    """Live processes whose command line or environment mentions ``folder`` (the fork
    server's children have its command line; the runner's environment names ``folder``)."""
    found = []
    for process in psutil.process_iter(["cmdline", "environ", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            words = [*(process.info["cmdline"] or []), *(process.info["environ"] or {}).values()]
            if str(folder) in " ".join(words):
                found.append(process)
        except psutil.Error:
            pass
    return found


def _choose_blocks(rng: random.Random, the_plan, role: str) -> list:
    """A random set of items to rerun, holding at least one that starts ``role``."""
    items = list(the_plan.items)
    if role == "loop_execute":
        needed = [i for i in items if i.kind == "loop"]
    elif role == "databases_provider":
        needed = [i for i in items if i.needs_provider]
    else:
        needed = items
    chosen = {rng.choice(needed).name}
    chosen |= {i.name for i in items if rng.random() < 0.3}
    return [i for i in items if i.name in chosen]


@dataclasses.dataclass
class Trial:
    """The figures of one trial (recorded in the junit report and the JSON log)."""

    role: str
    signal: str
    seed: int
    experiment: str = ""
    blocks: int = 0
    hit: bool = False  # the signal reached a live process of the role (proven: see _freeze)
    attempts: int = 0  # runs started until the signal hit (MAX_ATTEMPTS at most)
    misses: list = dataclasses.field(default_factory=list)  # the points that missed, and why
    point: str = ""  # where the signal landed: "<watched script> #<k> + <delay> s"
    outcome: str = ""  # "failed: system error", "completed", ...
    survivors_s: float = 0.0  # time for the surviving processes to exit
    rerun: str = ""
    detail: str = ""  # the first line of the system error, if any


@dataclasses.dataclass
class Point:
    """Where to send the signal: ``delay`` s after the ``occurrence``-th watched process appeared.

    The watched processes are the role's own, or (runner) the ``execute`` scripts.
    """

    occurrence: int
    delay: float


def _point(rng: random.Random, role: str, expected: int, attempt: int) -> Point:
    """The seeded point of the first attempt; a retry signals the first process at sight."""
    if attempt > 1:
        return Point(1, 0.0)
    occurrence = rng.randint(1, max(1, expected))
    return Point(occurrence, rng.uniform(0.0, 0.3 if role == "runner" else 0.2))


def run_trial(baseline: Baseline, trial: Trial, folder: Path) -> Trial:
    """One trial: up to ``MAX_ATTEMPTS`` runs until the signal hits; fails if it never does."""
    role, signame, seed = trial.role, trial.signal, trial.seed
    rng = random.Random(f"{role}/{signame}/{seed}")
    experiment = TUNE if role == "loop_execute" else rng.choice((LINEAR, TUNE))
    trial.experiment = experiment
    rerun_items = _choose_blocks(rng, baseline.plans[experiment], role)
    trial.blocks = len(rerun_items)
    if role == "loop_execute":
        expected = sum(1 for i in rerun_items if i.kind == "loop")
    elif role == "databases_provider":
        expected = sum(1 for i in rerun_items if i.needs_provider)
    else:
        expected = len(rerun_items)  # one execute per block (the runner's points)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        trial.attempts = attempt
        point = _point(rng, role, expected, attempt)
        # every command line names the attempt's folder
        where = folder / f"fault-{role}-{signame}-{seed}-{attempt}"
        _attempt(baseline, trial, rerun_items, point, where)
        if trial.hit:
            return trial
    raise AssertionError(
        f"the {signame} of {role} missed a live process in all {MAX_ATTEMPTS} attempts "
        f"(an undisturbed run proves nothing): {trial.misses}"
    )


def _attempt(baseline: Baseline, trial: Trial, rerun_items: list, point: Point, folder: Path):
    """One disturbed run of the trial's experiment and the checks; sets ``trial.hit``."""
    role, signame, experiment = trial.role, trial.signal, trial.experiment
    the_plan = baseline.plans[experiment]
    prefix = copy_example_prefix(folder / "prefix")
    cache = folder / "cache"
    shutil.copytree(baseline.cache, cache)
    (folder / "tmp").mkdir()
    for item in rerun_items:
        for output in item.outputs:
            for path in planner.output_files(str(cache), output.path):
                os.chmod(path, 0o644)
                os.unlink(path)

    deadline = DEADLINE if signame == "stop" else None
    log = folder / "run.log"
    with open(log, "wb") as out:
        runner = subprocess.Popen(
            run_command(prefix, cache, experiment),
            env=environment(folder, deadline),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _disturb(runner, role, SIGNALS[signame], point, trial)
        status = runner.wait(60)
    finally:
        if runner.poll() is None:
            os.kill(runner.pid, signal.SIGCONT)
            runner.kill()
            runner.wait()
    text = log.read_text(errors="replace")

    # -- no process left behind
    left = _mentioning(folder)
    for process in left:
        process.kill()
    assert not left, f"processes left behind: {[p.pid for p in left]}\n{text}"
    if not trial.hit:  # an undisturbed run: another attempt (its figures prove nothing)
        shutil.rmtree(folder, ignore_errors=True)
        return

    # -- what the disturbed run reported
    failed = [
        line.split("`")[1].split("'")[0] for line in text.splitlines() if line.startswith("block `")
    ]
    if role == "runner" and signame == "kill":
        assert status == -signal.SIGKILL, (status, text)  # the signal hit: it died of it
        trial.outcome = "runner killed"
    elif failed:
        assert status == 1, text
        assert "--- system error ---" in text and "--- user error ---" not in text, text
        trial.outcome = "failed: system error"
        error = text.split("--- system error ---\n", 1)[1].split("\n---", 1)[0].strip()
        trial.detail = error.splitlines()[-1][:200]  # a traceback's last line: the error
    else:
        assert status == 0, text
        trial.outcome = "completed"

    # -- the cache: nothing of a failed block, nothing corrupt
    for name in failed:
        for output in the_plan[name].outputs:
            assert planner.check_output(str(cache), output.path) == "missing", (name, text)
    report = maintenance.verify_cache(str(cache))
    bad = [o for o in report.outputs if o.status == "corrupt"]
    if not (role == "runner" and signame == "kill"):
        bad += [o for o in report.outputs if o.status == "incomplete"]
    assert not bad, (bad, text)

    # -- a rerun completes with the undisturbed results
    done = subprocess.run(
        run_command(prefix, cache, experiment, "--json"),
        env=environment(folder, None),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:  # show why (the JSON report carries no error text)
        again = subprocess.run(
            run_command(prefix, cache, experiment),
            env=environment(folder, None),
            capture_output=True,
            text=True,
            timeout=120,
        )
        raise AssertionError(f"rerun failed:\n{again.stdout}\n{again.stderr}\nfirst run:\n{text}")
    assert json.loads(done.stdout)["results"] == baseline.results[experiment]
    trial.rerun = "identical results"
    assert not _mentioning(folder)
    shutil.rmtree(folder, ignore_errors=True)


def _freeze(process: psutil.Process) -> bool:
    """SIGSTOP ``process``; ``True`` once it is seen stopped.

    This proves the signal reached a live process: one that had exited (a
    zombie, or gone) cannot enter the stopped state. A kill trial then sends
    SIGKILL to the frozen process (SIGKILL ends a stopped process too).
    """
    try:
        process.send_signal(signal.SIGSTOP)  # psutil checks the pid was not reused
    except psutil.NoSuchProcess:
        return False
    limit = time.monotonic() + 5
    while time.monotonic() < limit:
        try:
            status = process.status()
        except psutil.NoSuchProcess:
            return False
        if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
            return True
        if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        time.sleep(0.001)
    return False


def _target(runner: subprocess.Popen, role: str, point: Point, trial: Trial):
    """Freeze the process to disturb at ``point`` (see :func:`_freeze`); ``None``: missed.

    Waits for the ``point.occurrence``-th watched process, then ``point.delay``
    s. A role's process that ended meanwhile is a miss: the next one is frozen
    at sight. The runner, or the fork server, is frozen while the watched ``execute`` runs
    (a fork server's child: ``execute``'s parent).
    """
    watched = "execute" if role in ("runner", "fork_server") else role
    limit = time.monotonic() + 60
    seen: list[int] = []
    delay = point.delay
    while runner.poll() is None and time.monotonic() < limit:
        for process in _descendants(runner.pid):
            if process.pid in seen or not _is_role(process, watched) or not _running(process):
                continue
            seen.append(process.pid)
            if len(seen) < point.occurrence:
                continue
            time.sleep(delay)
            target = psutil.Process(runner.pid) if role == "runner" else process
            if role == "fork_server":
                try:
                    target = process.parent()
                except psutil.Error:
                    target = None  # execute ended (and was reaped): a miss
                if target is not None and not _is_role(target, role):
                    raise AssertionError(f"{_describe(process)} is not a fork server's child")
            if target is not None and _freeze(target):
                trial.point = f"{watched} #{len(seen)} + {delay:.3f} s"
                return target
            trial.misses.append(
                f"{role} ended before the signal: {watched} #{len(seen)} + {delay:.3f} s"
            )
            if role == "runner":
                return None  # it ended: nothing more to disturb in this run
            delay = 0.0  # the next one, at sight
        time.sleep(0.005)
    trial.misses.append(f"the run ended before {watched} #{max(point.occurrence, len(seen) + 1)}")
    return None


def _disturb(runner: subprocess.Popen, role: str, signum: int, point: Point, trial: Trial) -> None:
    """Send ``signum`` to the role's process at ``point``; time the survivors."""
    target = _target(runner, role, point, trial)
    if target is None:
        return
    trial.hit = True  # the target is frozen: it was alive (a stop trial's signal is this one)
    if role == "runner":
        peers = _descendants(runner.pid)
    else:
        # the block's processes; the fork server serves the next blocks (it must be gone
        # when the run is: see _mentioning)
        peers = [
            p
            for p in _descendants(runner.pid)
            if p.pid != target.pid and _running(p) and not _is_role(p, "fork_server")
        ]
    if signum == signal.SIGKILL:
        target.send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    bound = KILL_BOUND if signum == signal.SIGKILL else STOP_BOUND
    last = ""
    while time.monotonic() - t0 < bound + 5:
        running = [p for p in peers if _running(p)]
        if not running:
            break
        last = ", ".join(_describe(p) for p in running)
        time.sleep(0.02)
    trial.survivors_s = round(time.monotonic() - t0, 2)
    alive = [_describe(p) for p in peers if _running(p)]
    if role == "runner" and signum == signal.SIGSTOP:
        runner.send_signal(signal.SIGCONT)  # let it report what happened
    assert not alive, f"processes still running {trial.survivors_s} s after the signal: {alive}"
    assert trial.survivors_s <= bound, (
        f"survivors took {trial.survivors_s} s (bound {bound} s); the last: {last}"
    )


# -- the tests ------------------------------------------------------------------------------------


#: the trials of this module run: (role, signal) -> [trials, runs, points tried, hits]
_HITS: dict = {}


def _record(trial: Trial) -> None:
    """Append the trial's figures to ``$BEAT_RELIABILITY_LOG`` (JSON lines), if set."""
    row = _HITS.setdefault((trial.role, trial.signal), [0, 0, 0, 0])
    row[0] += 1
    row[1] += trial.attempts
    row[2] += len(trial.misses) + trial.hit
    row[3] += trial.hit
    path = os.environ.get("BEAT_RELIABILITY_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": "fault", **dataclasses.asdict(trial)}) + "\n")


@pytest.fixture(scope="module", autouse=True)
def hit_rates():
    """At the end of the module: one ``fault-hits`` JSON line per role and signal, and per role.

    ``hit_rate`` = points that hit a live process / points tried (a miss is
    retried at another point, in the same run or the next: every passing
    trial has one hit; ``runs``: the runs started).
    """
    yield
    path = os.environ.get("BEAT_RELIABILITY_LOG")
    if not (path and _HITS):
        return
    rows = dict(_HITS)
    for role in ROLES:
        parts = [v for (r, _), v in _HITS.items() if r == role]
        if parts:
            rows[(role, "all")] = [sum(column) for column in zip(*parts)]
    with open(path, "a", encoding="utf-8") as f:
        for (role, signame), (trials, runs, points, hits) in sorted(rows.items()):
            line = {"kind": "fault-hits", "role": role, "signal": signame, "trials": trials}
            line.update(runs=runs, points=points, hits=hits, hit_rate=round(hits / points, 3))
            f.write(json.dumps(line) + "\n")


def _trial(baseline: Baseline, role: str, signame: str, seed: int, folder: Path) -> None:
    trial = Trial(role, signame, seed)
    try:
        run_trial(baseline, trial, folder)
    except BaseException as exc:
        trial.outcome = f"test failed: {type(exc).__name__}"
        raise
    finally:
        _record(trial)  # a failed trial counts too (its misses lower the hit rate)


def test_a_signal_counts_as_a_hit_only_on_a_live_process():
    """``_freeze`` (the proof of a hit) holds for a live process, not for one that exited."""
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        zombie = psutil.Process(ended.pid)
        limit = time.monotonic() + 30
        while zombie.status() != psutil.STATUS_ZOMBIE:  # exited, not reaped: still signalable
            assert time.monotonic() < limit
            time.sleep(0.01)
        assert _freeze(psutil.Process(live.pid))
        assert psutil.Process(live.pid).status() == psutil.STATUS_STOPPED
        assert not _freeze(zombie)
        ended.wait()
        assert not _freeze(zombie)  # reaped: gone
    finally:
        live.kill()
        live.wait()
        ended.wait()


def _fake_runner(*sleeps: float) -> subprocess.Popen:
    """A process that runs, one after the other, fake ``execute`` scripts sleeping ``sleeps``."""
    script = "import subprocess, sys\n" + "".join(
        f"subprocess.run([sys.executable, '-c', 'import time; time.sleep({t})', "
        f"'beat_backend.scripts.execute'])\n"
        for t in sleeps
    )
    return subprocess.Popen([sys.executable, "-c", script])


def test_a_missed_point_moves_on_and_a_run_without_a_hit_is_a_miss():
    # the first script ends during the delay: the second is frozen at sight
    runner = _fake_runner(0.2, 30)
    trial = Trial("execute", "stop", 0)
    try:
        target = _target(runner, "execute", Point(1, 2.0), trial)
        assert target is not None and target.status() == psutil.STATUS_STOPPED
        assert trial.misses == ["execute ended before the signal: execute #1 + 2.000 s"]
        assert trial.point == "execute #2 + 0.000 s"
    finally:
        for process in _descendants(runner.pid):
            process.kill()
        runner.kill()
        runner.wait()
    # the run ends before the chosen process: nothing was disturbed
    runner = _fake_runner(0.1)
    trial = Trial("execute", "kill", 0)
    assert _target(runner, "execute", Point(2, 0.0), trial) is None
    assert trial.misses == ["the run ended before execute #2"]
    runner.wait()


@pytest.mark.parametrize("signame", sorted(SIGNALS))
@pytest.mark.parametrize("role", ROLES)
def test_fault(baseline, role, signame, tmp_path):
    _trial(baseline, role, signame, 0, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, SLOW_TRIALS + 1))
@pytest.mark.parametrize("signame", sorted(SIGNALS))
@pytest.mark.parametrize("role", ROLES)
def test_fault_seeded(baseline, role, signame, seed, tmp_path):
    _trial(baseline, role, signame, seed, tmp_path)
