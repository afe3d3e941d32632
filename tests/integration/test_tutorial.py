"""docs/tutorial.md, run as written, so that it cannot go stale.

Every fenced block with ``file=PATH`` in its info string is written to PATH in
a fresh temporary folder, in the order of the tutorial; every ``$ `` line of a
``console`` block is run there with bash (the installed ``beat-backend`` and
this ``python`` first on the PATH), and its standard output must match the
lines under it: a line ``...`` matches any number of lines, ``...`` inside a
line any text. A ``console exit=N`` block expects exit status N and matches
standard output followed by standard error; any other command must exit 0.
``needs=dot`` blocks need Graphviz (skipped without it, unless
``BEAT_BACKEND_GRAPHVIZ_TESTS=require``, as CI sets).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _paths import REPO

TUTORIAL = REPO / "docs" / "tutorial.md"
REFERENCE = REPO / "docs" / "reference.md"
GRAPHVIZ_ENV = "BEAT_BACKEND_GRAPHVIZ_TESTS"

_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Step:
    kind: str  # "file" or "console"
    path: str = ""
    content: str = ""
    exit: int = 0
    needs: str = ""
    commands: list[Command] = field(default_factory=list)


def _options(info: str) -> tuple[str, dict[str, str]]:
    language, *words = info.split()
    return language, dict(word.split("=", 1) for word in words if "=" in word)


def steps(text: str) -> list[Step]:
    """The files and console blocks of a tutorial, in order."""
    found = []
    for match in _FENCE.finditer(text):
        info, body = match.group(1).strip(), match.group(2)
        if not info:
            continue
        language, options = _options(info)
        if "file" in options:
            found.append(Step("file", path=options["file"], content=body))
        elif language == "console":
            step = Step("console", exit=int(options.get("exit", 0)), needs=options.get("needs", ""))
            for line in body.splitlines():
                if line.startswith("$ "):
                    step.commands.append(Command(line[2:]))
                elif step.commands:
                    step.commands[-1].expected.append(line)
                else:
                    raise ValueError(f"console block starts with output: {line!r}")
            found.append(step)
    return found


def matches(expected: list[str], actual: str) -> bool:
    """``actual`` (trailing spaces ignored) is ``expected``, ``...`` being a wildcard."""
    pattern = ""
    for line in expected:
        if line.strip() == "...":
            pattern += r"(?:[^\n]*\n)*?"
        else:
            pattern += ".*".join(map(re.escape, line.rstrip().split("..."))) + r"\n"
    text = "".join(line.rstrip() + "\n" for line in actual.splitlines())
    return re.fullmatch(pattern, text) is not None


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEAT_")}
    scripts = os.path.dirname(sys.executable)
    env["PATH"] = scripts + os.pathsep + env.get("PATH", "")
    env["COLUMNS"] = "100"
    return env


def _needs(step: Step) -> str | None:
    """Why ``step`` cannot run here (``None``: it can)."""
    if step.needs == "dot" and shutil.which("dot") is None:
        if os.environ.get(GRAPHVIZ_ENV) == "require":
            pytest.fail(f"Graphviz's `dot' is not on the PATH, and {GRAPHVIZ_ENV}=require")
        return "Graphviz's `dot' is not on the PATH"
    return None


def _run(step: Step, command: Command, folder: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "-c", command.line],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + (done.stderr if step.exit else "")
    report = (
        f"$ {command.line}\nexit status {done.returncode} (expected {step.exit})\n"
        f"--- stdout ---\n{done.stdout}--- stderr ---\n{done.stderr}"
        "--- expected ---\n" + "\n".join(command.expected)
    )
    assert done.returncode == step.exit, report
    assert matches(command.expected, output), report


# --------------------------------------------------------------------------
# the harness itself


def test_matching():
    assert matches(["a", "b ... d"], "a\nb c d\n")
    assert matches(["a", "...", "z"], "a\nz\n")
    assert matches(["a", "...", "z"], "a\nb\nc\nz  \n")
    assert not matches(["a", "b"], "a\nb\nc\n")  # every line is expected
    assert not matches(["a", "...", "z"], "a\nb\n")
    assert not matches(["x 1.0"], "x 1.00\n")
    assert matches([], "")
    assert not matches([], "something\n")


def test_reading_steps():
    text = (
        "intro\n```json file=p/a.json\n{}\n```\n"
        "```text\nnot run\n```\n"
        "```console exit=1\n$ false\n$ echo a\na\n```\n"
    )
    assert steps(text) == [
        Step("file", path="p/a.json", content="{}\n"),
        Step("console", exit=1, commands=[Command("false"), Command("echo a", ["a"])]),
    ]


def test_the_tutorial_covers_what_it_promises():
    found = steps(TUTORIAL.read_text(encoding="utf-8"))
    paths = [s.path for s in found if s.kind == "file"]
    for kind in ("dataformats", "protocoltemplates", "databases", "algorithms"):
        assert any(p.startswith(f"myprefix/{kind}/") for p in paths), kind
    assert "myprefix/toolchains/me/chain/1.json" in paths
    assert "myprefix/experiments/me/me/chain/1/first.json" in paths
    commands = [c.line for s in found if s.kind == "console" for c in s.commands]
    for needed in (
        "python check_view.py",
        "beat-backend check myprefix",
        "beat-backend run --prefix myprefix --cache mycache me/me/chain/1/first",
        "--dry-run",
        "--export second_block",
        "beat-backend block second_block",
        "beat-backend graph",
    ):
        assert any(needed in c for c in commands), needed
    assert all(
        c.expected
        for s in found
        if s.kind == "console" and not s.needs
        for c in s.commands
        if not c.line.startswith("sed ")
    )


def test_the_readme_links_the_documents():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "(docs/tutorial.md)" in readme
    assert "(docs/reference.md)" in readme
    assert REFERENCE.is_file()


# --------------------------------------------------------------------------
# the tutorial


def test_the_tutorial_runs_as_written(tmp_path):
    env = _environment()
    folder = tmp_path / "work"
    folder.mkdir()
    skipped = []
    for step in steps(TUTORIAL.read_text(encoding="utf-8")):
        if step.kind == "file":
            path = folder / step.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(step.content, encoding="utf-8")
            continue
        reason = _needs(step)
        if reason is not None:
            skipped.append(reason)
            continue
        for command in step.commands:
            _run(step, command, folder, env)
    if (folder / "chain.svg").exists():
        assert "second" in (folder / "chain.svg").read_text(encoding="utf-8")
        assert "summary" in (folder / "plan.svg").read_text(encoding="utf-8")
    if skipped:
        pytest.skip("; ".join(skipped) + " (the rest of the tutorial ran)")
