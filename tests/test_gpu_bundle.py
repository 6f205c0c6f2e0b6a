"""The GPU bundle (tools/gpu/make_bundle.sh) carries every third-party module that what
tools/gpu/check.sh runs imports: the modules reached from its test files, the benchmark and the
Python layers, followed through the project's own modules (every import statement, those inside
functions too), checked against the packages make_bundle.sh copies, the standard library and
Caffe; a module imported only inside functions the check does not call is listed with its reason. So a GPU session is not spent finding a missing import. Static (ast), no bundle is built."""
import ast
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# where the project's modules live on that machine: PYTHONPATH of tools/env.sh, and the tests' folder
SEARCH = [os.path.join(ROOT, "layers"), os.path.join(ROOT, "tools"), os.path.join(ROOT, "tests")]
PROVIDED_BY_CAFFE = {"caffe"}


def check_sh_entry_points():
    """The Python files check.sh runs: its pytest files (with conftest.py) and `python -m` modules."""
    text = open(os.path.join(ROOT, "tools", "gpu", "check.sh")).read()
    files = [os.path.join(ROOT, p) for p in re.findall(r"\b(tests/\S+\.py)\b", text)]
    files.append(os.path.join(ROOT, "tests", "conftest.py"))
    for mod, arg in re.findall(r"python -m ([\w.]+)(?: (\w+))?", text):
        if mod == "pytest":
            continue
        path = module_file(mod)
        files.append(path)
        if mod == "dhn.bench" and arg:      # python -m dhn.bench NAME runs dhn/bench/bench_NAME.py
            files.append(module_file("dhn.bench.bench_" + arg))
    files += [os.path.join(ROOT, "layers", f) for f in os.listdir(os.path.join(ROOT, "layers")) if f.endswith(".py")]
    return files


def module_file(name):
    """The project file of a dotted module name, or None where it is not the project's."""
    parts = name.split(".")
    for base in SEARCH:
        for path in (os.path.join(base, *parts) + ".py", os.path.join(base, *parts, "__init__.py"),
                     os.path.join(base, *parts, "__main__.py") if len(parts) > 1 and parts[-1] == "bench" else ""):
            if path and os.path.isfile(path):
                return path
    return None


def package_of(path):
    """The dotted package a project file sits in ('' for a top-level module of a search folder)."""
    for base in SEARCH:
        rel = os.path.relpath(path, base)
        if not rel.startswith(".."):
            parts = rel[:-3].split(os.sep)
            return ".".join(parts[:-1])
    return ""


def imports_of(path):
    """[(module name, lazy)] of every import in a file (relative imports made absolute); lazy: inside
    a function, so it runs only when that function is called."""
    tree = ast.parse(open(path).read(), path)
    lazy_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f)}
    names = []
    for node in ast.walk(tree):
        lazy = id(node) in lazy_nodes
        if isinstance(node, ast.Import):
            names += [(a.name, lazy) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package_of(path).split(".") if package_of(path) else []
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([node.module] if node.module else []))
            names.append((base, lazy))
            names += [("%s.%s" % (base, a.name), lazy) for a in node.names]   # from pkg import module
    return [(n, lazy) for n, lazy in names if n]


def third_party_imports(entry_files):
    """{top-level name: (first file importing it, lazy everywhere)} of the modules not in the
    project, reached from entry_files through every project import, lazy ones too."""
    seen, todo, outside = set(), list(entry_files), {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name, lazy in imports_of(path):
            own = module_file(name)
            if own:
                todo.append(own)
                if "." in name:        # the packages above it run their __init__ too
                    todo += [f for f in (module_file(name.rsplit(".", 1)[0]),) if f]
            elif not module_file(name.split(".")[0]) and not _submodule_of_project(name):
                entry = outside.setdefault(name.split(".")[0], [os.path.relpath(path, ROOT), True])
                if not lazy and entry[1]:      # name the file that imports it on import
                    entry[:] = [os.path.relpath(path, ROOT), False]
    return outside


def _submodule_of_project(name):
    """`from dhn.x import SOMETHING` names SOMETHING, not a module: it belongs to the project."""
    return "." in name and module_file(name.rsplit(".", 1)[0]) is not None


def bundled_packages():
    """The venv packages make_bundle.sh copies (its `for pkg in ...` list), as import names."""
    text = open(os.path.join(ROOT, "tools", "gpu", "make_bundle.sh")).read()
    items = re.search(r"for pkg in ([^;]+); do", text).group(1).split()
    return {re.sub(r"\.py$", "", item) for item in items if not item.endswith(".libs")}


# Imported only inside functions that the GPU check does not call, so the bundle leaves them out:
# each with the reason. A new lazy import of an unbundled module fails until it is listed here.
LAZY_OFF_THE_GPU_PATH = {
    "cv2": "image decoding in dhn.datasets; the check's data are arrays written to LMDB",
}


def missing_from_bundle(bundled):
    stdlib = set(sys.stdlib_module_names)
    return {name: where for name, (where, lazy) in third_party_imports(check_sh_entry_points()).items()
            if name not in stdlib and name not in bundled and name not in PROVIDED_BY_CAFFE
            and not (lazy and name in LAZY_OFF_THE_GPU_PATH)}


def test_the_gpu_bundle_carries_every_module_the_gpu_check_imports():
    missing = missing_from_bundle(bundled_packages())
    assert missing == {}, ("tools/gpu/make_bundle.sh does not carry %s, which the GPU check imports (%s): add it to "
                           "its package list" % (", ".join(sorted(missing)), "; ".join("%s in %s" % kv for kv in
                                                                                       sorted(missing.items()))))


def test_the_bundle_check_fails_when_a_module_is_left_out():
    bundled = bundled_packages()
    for left_out in ("lmdb", "numpy", "google"):
        assert left_out in missing_from_bundle(bundled - {left_out}), left_out
