"""The documented commands exist as written.

Every command line in the ```sh blocks of README.md and docs/*.md (docs/lab/, the dated history,
keeps its commands as they ran) is checked without running anything:
- `make VERB VAR=value …`: `make -n` (a dry run) succeeds, so every verb exists; every variable
  changes what the verb runs (its value reaches the recipe), or is exported by the Makefile, or is
  read from the environment by a script (so a variable that does nothing fails); and every
  `python -m dhn.X …` line the dry run prints parses with that tool's own argument parser;
- `python -m dhn.X …`: parses with the tool's parser;
- `. FILE`, `bash FILE`, `python FILE`, `tools/…`: the file exists.
The block's shell assignments (`SQ=…`) are expanded as a shell would. Parsing means the tool's
main() runs up to its parse_args(), which is stopped there: no tool does any work.
Also the front door's shape: README.md at most 200 lines with its first command in the first 30;
no issue numbers, ../shared or "this machine" in README.md, docs/USAGE.md, docs/INSTALL.md; every
relative link in README.md and docs/ resolves (file and heading); every make verb and variable of
the Makefile is documented in docs/USAGE.md.
"""
import argparse
import contextlib
import glob
import importlib
import io
import os
import re
import shlex
import subprocess

import pytest

ROOT = os.environ["DHN_ROOT"]
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
EXTERNAL = {"apt-get", "curl", "git", "tar", "cd"}     # not ours: nothing to check here
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
        return fh.read()


def cut_comment(line):
    """The line without a trailing shell comment (a # at a word start, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def documented_commands():
    """[(where, assignments, command)] of every ```sh block of DOCS, in order: continuation lines
    joined, comments cut, `a && b` as two commands; assignments: the block's `NAME=value` lines
    before the command."""
    found = []
    for rel in DOCS:
        lines = read(rel).splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() != "```sh":
                i += 1
                continue
            assigns, i = [], i + 1
            while i < len(lines) and lines[i].strip() != "```":
                start, text = i + 1, lines[i]
                while text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text[:-1] + " " + lines[i].strip()
                i += 1
                text = cut_comment(text).strip()
                if not text:
                    continue
                words = shlex.split(text)
                if len(words) == 1 and ASSIGNMENT.match(words[0]):
                    assigns.append(text)
                    continue
                for part in text.split(" && "):
                    found.append(("%s:%d" % (rel, start), tuple(assigns), part.strip()))
            i += 1
    return found


COMMANDS = documented_commands()


def expand(assigns, command):
    """The command's words as bash expands them after the block's assignments (no globbing)."""
    script = "set -f\n%s\nprintf '%%s\\0' %s" % ("\n".join(assigns), command)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\0")[:-1]


# ----------------------------------------------------------------------------- make

def dry_run(env, argv):
    return subprocess.run(["make", "-n", "--no-print-directory"] + argv, cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, **env))


def makefile_exports():
    names = set()
    for line in read("Makefile").splitlines():
        if line.startswith("export "):
            names.update(line.split()[1:])
    return names


def read_from_environment(name):
    """Whether a script that make verbs run reads NAME from the environment."""
    pattern = re.compile(r"\$\{?%s\b|environ(?:\.get)?[\[(]\s*[\"']%s[\"']|getenv\(\s*[\"']%s[\"']" % (name, name, name))
    files = ["Makefile"] + glob.glob(os.path.join(ROOT, "tools", "**", "*.sh"), recursive=True) \
        + glob.glob(os.path.join(ROOT, "tools", "**", "*.py"), recursive=True) + [os.path.join(ROOT, "tools", "env.sh")]
    return any(pattern.search(read(os.path.relpath(f, ROOT))) for f in files)


def dhn_lines(dry_output):
    """[(module, argv)] of the `python -m dhn.…` commands in make's dry-run output."""
    found = []
    for line in dry_output.replace("\\\n", " ").splitlines():
        m = re.search(r"\bpython3? -m (dhn[\w.]*)(.*)$", line)
        if m:
            found.append((m.group(1), shlex.split(m.group(2))))
    return found


def check_make(env, argv):
    """Problems of one documented make line ([] when none)."""
    base = dry_run(env, argv)
    if base.returncode != 0:
        return ["`make -n %s` fails: %s" % (" ".join(argv), base.stderr.strip()[-500:])]
    problems = []
    exported = makefile_exports()
    given = [(a.split("=", 1), True) for a in argv if ASSIGNMENT.match(a)] + [([k, v], False) for k, v in env.items()]
    for (name, value), on_command_line in given:
        probe = value + "_probe"
        if on_command_line:
            other = dry_run(env, [a if not a.startswith(name + "=") else "%s=%s" % (name, probe) for a in argv])
        else:
            other = dry_run(dict(env, **{name: probe}), argv)
        if other.stdout != base.stdout or name in exported or read_from_environment(name):
            continue
        problems.append("%s= changes nothing `make %s` runs: the Makefile does not use it"
                        % (name, " ".join(a for a in argv if not ASSIGNMENT.match(a))))
    for module, args in dhn_lines(base.stdout):
        problem = parse_problem(module, args)
        if problem:
            problems.append("`make %s` runs `python -m %s %s`, which %s" % (" ".join(argv), module, " ".join(args), problem))
    return problems


# ----------------------------------------------------------------------------- the tools' parsers

class Parsed(Exception):
    pass


def parse_problem(module, args):
    """None when the tool's own parser accepts args, else what it said. main() stops at parse_args()."""
    mod = importlib.import_module(module)
    if hasattr(mod, "__path__"):                  # a package run as python -m: its __main__
        mod = importlib.import_module(module + ".__main__")
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, a=None, namespace=None):
        raise Parsed(original(self, a, namespace))

    err = io.StringIO()
    argparse.ArgumentParser.parse_args = parse_and_stop
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            mod.main(list(args))
    except Parsed:
        return None
    except SystemExit as e:
        return None if e.code in (0, None) else "its parser refuses: %s" % err.getvalue().strip()[-400:]
    finally:
        argparse.ArgumentParser.parse_args = original
    return "returned without parsing its arguments"


# ----------------------------------------------------------------------------- the documented lines

@pytest.mark.parametrize("where,assigns,command", COMMANDS, ids=["%s %s" % (c[0], c[2][:60]) for c in COMMANDS])
def test_documented_command_exists_as_written(where, assigns, command):
    words = expand(assigns, command)
    env = {}
    while words and ASSIGNMENT.match(words[0]):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    assert words, "%s: an assignment alone" % where
    prog, args = words[0], words[1:]
    if prog == "make":
        problems = check_make(env, args)
    elif prog in ("python", "python3") and args[:1] == ["-m"]:
        assert args[1].startswith("dhn"), "%s: python -m %s is not one of ours" % (where, args[1])
        problem = parse_problem(args[1], args[2:])
        problems = [problem] if problem else []
    elif prog in ("python", "python3", "bash", ".", "source"):
        problems = [] if os.path.isfile(os.path.join(ROOT, args[0])) else ["%s does not exist" % args[0]]
    elif prog.startswith("tools/"):
        problems = [] if os.access(os.path.join(ROOT, prog), os.X_OK) else ["%s is not an executable here" % prog]
    else:
        assert prog in EXTERNAL, "%s: `%s` is neither ours nor a known outside program: check it here" % (where, prog)
        problems = []
    assert not problems, "%s: `%s`:\n  %s" % (where, command, "\n  ".join(problems))


def test_the_docs_have_commands():
    places = {c[0].split(":")[0] for c in COMMANDS}
    assert {"README.md", "docs/USAGE.md", "docs/INSTALL.md"} <= places, places
    assert sum(c[2].startswith("make ") for c in COMMANDS) >= 20


def test_a_verb_or_variable_that_does_nothing_is_caught():
    """The checks above can fail: a verb the Makefile lacks, a variable it ignores, an option a
    tool does not declare."""
    assert check_make({}, ["no-such-verb"])
    assert check_make({}, ["report", "NO_SUCH_VARIABLE=1"])
    assert parse_problem("dhn.train", ["--no-such-option"])
    assert parse_problem("dhn.train", ["--bits", "48"]) is None


# ----------------------------------------------------------------------------- the front door

def test_readme_is_a_front_door():
    lines = read("README.md").splitlines()
    assert len(lines) <= 200, "README.md has %d lines" % len(lines)
    first = next(i for i, l in enumerate(lines) if l.strip() == "```sh") + 2
    assert first <= 30, "README.md's first command is on line %d" % first


@pytest.mark.parametrize("rel", ["README.md", "docs/USAGE.md", "docs/INSTALL.md"])
def test_no_lab_language_in_user_docs(rel):
    text = read(rel)
    for pattern in (r"\bissues?\s+#?\d+", r"\.\./shared", r"this machine"):
        hits = [l for l in text.splitlines() if re.search(pattern, l, re.I)]
        assert not hits, "%s: %r in %s" % (rel, pattern, hits[:3])


def slug(heading):
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(rel):
    return {slug(l.lstrip("#")) for l in read(rel).splitlines() if re.match(r"#{1,6} ", l)}


def test_every_relative_link_resolves():
    docs = ["README.md", "CHANGELOG.md"] + [os.path.relpath(p, ROOT) for p in
                                             glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)]
    broken = []
    for rel in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", read(rel)):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(rel), path)) if path else rel
            if not os.path.exists(os.path.join(ROOT, dest)):
                broken.append("%s -> %s" % (rel, target))
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                broken.append("%s -> %s (no such heading)" % (rel, target))
    assert not broken, broken


INTERNAL = {"SHELL", "PYTHON", "VENV", "ENV", "REQ_STAMP", "TRAIN_ARGS", "MODEL_ARGS", "RUN_ARGS", "CURDIR", "MAKE"}


def test_every_make_verb_and_variable_is_in_usage():
    makefile, usage = read("Makefile") + read("tools/run_options.mk"), read("docs/USAGE.md")
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split()
    verbs = [v for v in phony if v not in ("system-deps", "venv", "caffe")]
    assert [v for v in verbs if "`make %s`" % v not in usage] == []
    variables = set(re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", makefile)) | set(re.findall(r"origin ([A-Z][A-Z0-9_]*)", makefile))
    assert sorted(v for v in variables - INTERNAL if "%s=" % v not in usage) == []
