#!/usr/bin/env python3
"""Runs every documented shell command as written, on a fresh clone (docs/OPERATIONS.md, "Docs
that run as written").

Every ```sh block in README.md, python/README.md, docs/*.md and examples/ carries a marker on
the line before its fence:

    <!-- doc-test: run -->           run each command; each must exit 0
    <!-- doc-test: run output -->    run, and compare output with the `# ...` lines under it
    <!-- doc-test: skip REASON -->   not run; the reason says why (a benchmark, an hour-long fuzz)
    <!-- doc-test: run, except scripts/test.sh: REASON -->   run all but the commands starting so

A block without a marker fails the check, so a new command cannot slip in unchecked. Commands
run from the clone's root with bash, one logical line at a time (backslash continuations
joined). A line that starts a server (scripts/demo.sh, pacerd --config, redis-server,
uvicorn) names its port in the text; it is started in the background, waited for until the port
answers, and stopped when another server wants that port or the document ends. These are the
documented ports (8000, 9090, 6390): the check runs alone (scripts/test.sh, after CTest) and
fails naming the port when one is taken.

Expected output: `# ` lines right under a command, in `run output` blocks. `...` matches
anything; a number matches a number within 2% or 2 of it (clocks move between runs); text after
two spaces and `(` is a remark, not output.

    scripts/check-docs.py               # a fresh clone of HEAD in a temporary directory
    scripts/check-docs.py --in-place    # this tree as it is (faster: its build/ is reused)
"""

import argparse
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ["README.md", "python/README.md", "docs/*.md", "examples/**/*.md"]
MARKER = re.compile(r"<!--\s*doc-test:\s*(run output|run|skip)\b,?\s*(.*?)\s*-->")
EXCEPT = re.compile(r"^except (\S+): (.+)$")
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL = {"sh", "bash", "shell", "console"}
SERVER = re.compile(r"^(scripts/demo\.sh|\S*pacerd\s+--config|redis-server\s|\S*python3? -m uvicorn)")
PORT = re.compile(r"(?:--port[ =]|127\.0\.0\.1:|localhost:)(\d{2,5})\b")
COMMAND_TIMEOUT = 1200  # a release build on two cores fits, a hang does not


class Block:
    def __init__(self, path, line, mode, reason, text):
        self.path, self.line, self.mode, self.reason, self.text = path, line, mode, reason, text

    def where(self):
        return f"{self.path}:{self.line}"


def blocks_of(path, relative):
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            i += 1
        if lang in SHELL:
            marker = MARKER.search(lines[start - 1]) if start > 0 else None
            text = "\n".join(lines[start + 1:i])
            if marker is None:
                out.append(Block(relative, start + 1, None, "", text))
            else:
                out.append(Block(relative, start + 1, marker.group(1), marker.group(2), text))
        i += 1
    return out


def commands_of(text):
    """(command, [expected output lines]) per logical line."""
    logical, pending = [], ""
    for raw in text.splitlines():
        if pending:
            pending += " " + raw.strip()
        else:
            pending = raw
        if pending.rstrip().endswith("\\"):
            pending = pending.rstrip()[:-1].rstrip()
            continue
        logical.append(pending)
        pending = ""
    out = []
    for line in logical:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if out:
                out[-1][1].append(stripped[1:].strip())
            continue
        out.append((stripped, []))
    return out


def port_of(command):
    m = PORT.search(command)
    if m:
        return int(m.group(1))
    if command.startswith("scripts/demo.sh") or "uvicorn" in command:
        return 8000  # their defaults
    return None


def port_taken(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port, process, log, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failure(f"the server exited with {process.returncode} before port {port} "
                          f"answered:\n{log.read_text()[-3000:]}")
        if port_taken(port):
            return
        time.sleep(0.2)
    raise Failure(f"port {port} did not answer within {seconds} s:\n{log.read_text()[-3000:]}")


class Failure(Exception):
    pass


NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def matches(expected, actual):
    """Does one expected output line (wildcards `...`, numbers with a tolerance) match?"""
    expected = re.split(r"\s{2,}\(", expected)[0].strip()
    actual = " ".join(actual.split())
    expected = " ".join(expected.split())
    pattern, numbers, pos = "", [], 0
    for m in re.finditer(r"\.\.\.|-?\d+(?:\.\d+)?", expected):
        pattern += re.escape(expected[pos:m.start()])
        if m.group(0) == "...":
            pattern += ".*?"
        else:
            pattern += r"(-?\d+(?:\.\d+)?)"
            numbers.append(float(m.group(0)))
        pos = m.end()
    pattern += re.escape(expected[pos:])
    found = re.fullmatch(pattern, actual, re.S)
    if not found:
        return False
    return all(abs(float(got) - want) <= max(2.0, abs(want) * 0.02)
               for got, want in zip(found.groups(), numbers))


def compare(command, expected, output):
    lines = [l.rstrip("\r") for l in output.splitlines() if l.strip()]
    if expected[0].startswith(("{", "[")):
        # JSON: one answer, wrapped over several comment lines; spacing is not output.
        lines = ["".join("".join(lines).split())]
        expected = ["".join("".join(expected).split())]
    if len(lines) != len(expected) or not all(matches(e, a) for e, a in zip(expected, lines)):
        raise Failure(f"`{command}` printed:\n{output}\nthe documentation says:\n" +
                      "\n".join(expected))


class Servers:
    def __init__(self, root, logs):
        self.root, self.logs, self.running = root, logs, {}

    def start(self, command, env):
        port = port_of(command)
        if port is None:
            raise Failure(f"`{command}` serves, but names no port (add `# 127.0.0.1:<port>`)")
        self.stop(port)
        if port_taken(port):
            raise Failure(f"port {port}, which `{command}` documents, is taken on this machine")
        log = self.logs / f"server-{port}-{len(os.listdir(self.logs))}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(["bash", "-c", command], cwd=self.root, env=env,
                                       stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.running[port] = process
        wait_for_port(port, process, log, COMMAND_TIMEOUT)

    def stop(self, port):
        process = self.running.pop(port, None)
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop_all(self):
        for port in list(self.running):
            self.stop(port)


def run_block(block, root, servers, env):
    excepted = EXCEPT.match(block.reason) if block.mode != "skip" else None
    if block.mode != "skip" and block.reason and not excepted:
        raise Failure(f"marker text '{block.reason}': expected 'except <command>: <reason>'")
    for command, expected in commands_of(block.text):
        if excepted and command.startswith(excepted.group(1)):
            continue
        if SERVER.match(command):
            servers.start(command, env)
            continue
        done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=root, env=env,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        if done.returncode != 0:
            raise Failure(f"`{command}` exited with {done.returncode}:\n"
                          f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
        if block.mode == "run output" and expected:
            compare(command, expected, done.stdout)


LINK = re.compile(r"\]\(([^)\s]+)\)")
REPO_PATH = re.compile(
    r"`((?:apps|bench|cmake|docs|examples|include|packaging|python|scripts|src|tests)/[^`\s]*)`")


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def dead_references(root, paths):
    """Links and `repo/paths` in the documents that point at nothing."""
    dead = []
    for path in paths:
        text = path.read_text()
        where = path.relative_to(root)
        for m in LINK.finditer(text):
            target = m.group(1)
            if re.match(r"^[a-z]+:", target):
                continue  # a URL
            file_part, _, anchor = target.partition("#")
            file = (path.parent / file_part).resolve() if file_part else path
            if not file.exists():
                dead.append(f"{where}: link to {target}: no such file")
            elif anchor and file.suffix == ".md":
                anchors = {slug(h) for h in re.findall(r"^#+\s+(.*)$", file.read_text(), re.M)}
                if anchor not in anchors:
                    dead.append(f"{where}: link to {target}: no such heading")
        for m in REPO_PATH.finditer(text):
            ref = m.group(1).rstrip(".,:;")
            if any(c in ref for c in "*<>{}$[]…") or "..." in ref:
                continue  # a pattern, not a file
            candidate = ref.split(":")[0]
            if not (root / candidate).exists() and not any(
                    (root / candidate).parent.glob((root / candidate).name + "*")):
                dead.append(f"{where}: `{ref}`: no such file or directory")
    return dead


INLINE_CTEST = re.compile(r"`(ctest --preset [^`]+)`")
INLINE_SCRIPT = re.compile(r"`((?:scripts|bench|python/bench)/[\w.-]+\.(?:sh|py))\b[^`]*`")


def is_program(path):
    """A script run as a command: a shell script, or a file starting with a #! line (a Python
    module such as python/bench/app.py is imported, not run)."""
    if path.suffix == ".sh":
        return True
    with open(path, "rb") as f:
        return f.read(2) == b"#!"


def inline_commands(root, paths):
    """Commands named in running text: each `ctest --preset ...` selects at least one test (listed
    with -N, not run: the test run runs them all), each script named exists, and is executable
    when it is a program."""
    problems = []
    for path in paths:
        text = path.read_text()
        where = path.relative_to(root)
        for m in INLINE_CTEST.finditer(text):
            for command in m.group(1).split("&&"):
                command = command.strip()
                if not command.startswith("ctest") or "..." in command:
                    continue  # not a ctest command, or a pattern ("ctest --preset ...")
                done = subprocess.run(["bash", "-c", command + " -N"], cwd=root,
                                      capture_output=True, text=True)
                total = re.search(r"Total Tests: (\d+)", done.stdout)
                if done.returncode != 0 or not total or int(total.group(1)) == 0:
                    problems.append(f"{where}: `{command}` selects no test:\n"
                                    f"{done.stdout[-500:]}{done.stderr[-500:]}")
        for m in INLINE_SCRIPT.finditer(text):
            script = root / m.group(1)
            if not script.is_file():
                problems.append(f"{where}: `{m.group(1)}`: no such file")
            elif is_program(script) and not os.access(script, os.X_OK):
                problems.append(f"{where}: `{m.group(1)}` is not an executable file")
    return problems


def documents(root):
    seen = []
    for pattern in DOCS:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and path not in seen:
                seen.append(path)
    return seen


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-place", action="store_true",
                        help="run in this tree instead of a fresh clone of HEAD")
    parser.add_argument("--list", action="store_true", help="list the blocks and their markers")
    args = parser.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="pacer-docs-"))
    root = ROOT
    if not args.in_place and not args.list:
        root = work / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(root)], check=True)
    logs = work / "logs"
    logs.mkdir()
    env = dict(os.environ)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")

    all_blocks = [(path, b) for path in documents(root)
                  for b in blocks_of(path, path.relative_to(root))]
    unmarked = [b.where() for _, b in all_blocks if b.mode is None]
    if args.list:
        for _, b in all_blocks:
            print(f"{b.where():32} {b.mode or 'UNMARKED'} {b.reason}")
        for d in dead_references(root, documents(root)):
            print(f"DEAD {d}")
        return 1 if unmarked else 0
    failures, ran, skipped = dead_references(root, documents(root)), 0, 0
    if unmarked:
        failures.append("shell blocks without a <!-- doc-test: ... --> marker: " +
                        ", ".join(unmarked))
    servers = Servers(root, logs)
    if (root / "build" / "dev" / "CTestTestfile.cmake").exists():
        failures += inline_commands(root, documents(root))
    else:
        print("check-docs: no build/dev: the ctest commands in running text are not checked")
    try:
        current = None
        for path, block in all_blocks:
            if path != current:
                servers.stop_all()  # a document's servers end with it
                current = path
            if block.mode == "skip":
                if not block.reason:
                    failures.append(f"{block.where()}: a skipped block must say why")
                skipped += 1
                continue
            if block.mode is None:
                continue
            started = time.monotonic()
            try:
                run_block(block, root, servers, env)
                ran += 1
                print(f"ok   {block.where()} ({time.monotonic() - started:.1f} s)", flush=True)
            except (Failure, subprocess.TimeoutExpired) as e:
                failures.append(f"{block.where()}: {e}")
                print(f"FAIL {block.where()}", flush=True)
    finally:
        servers.stop_all()
        if not args.in_place:
            shutil.rmtree(work, ignore_errors=True)
    print(f"check-docs: {ran} blocks ran, {skipped} skipped with a reason, {len(failures)} failed")
    for f in failures:
        print(f"\n{f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
