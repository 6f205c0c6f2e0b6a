"""One writer per folder: an exclusive fcntl.flock on <folder>/.lock while a tool writes files of
fixed names there (a run's prototxts, snapshots, codes/*.npy.tmp, results.json.tmp; weights'
.part). A second process is refused at once with one line naming the holder's pid. The holder
removes the file when it is done; the kernel drops the lock when a holder dies, kill -9 included,
so a lock file left behind blocks no one.
"""
import contextlib
import fcntl
import os

NAME = ".lock"
_held = {}   # real path -> depth: this process already holds it (dhn.demo, then dhn.train inside it)


class Busy(RuntimeError):
    """One line: the folder, the pid holding it, what to do."""


@contextlib.contextmanager
def hold(folder):
    """Hold folder's lock for the with-block (the folder is made if missing); Busy if another
    process holds it."""
    folder = os.path.realpath(folder)
    if folder in _held:
        _held[folder] += 1
        try:
            yield folder
        finally:
            _held[folder] -= 1
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, NAME)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)   # not inherited by children (caffe)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise Busy("%s is in use by another process (pid %s): wait for it to end or stop it, or use another "
                       "folder" % (folder, pid)) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)   # the file was removed by its holder meanwhile: lock the one now there
    os.ftruncate(fd, 0)
    os.write(fd, b"%d\n" % os.getpid())
    _held[folder] = 1
    try:
        yield folder
    finally:
        del _held[folder]
        try:
            os.remove(path)     # while still locked: a waiter that opened it sees it gone and retries
        except FileNotFoundError:
            pass
        os.close(fd)


def empty(folder):
    """Remove everything in a folder this process holds, but its lock file (removing that would let
    a second process lock a new file while this one still writes)."""
    import shutil
    assert os.path.realpath(folder) in _held, folder
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name == NAME:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
