"""Writing a file whole or not at all: the one helper every writer of a result uses."""
import os


def write_atomic(path, content, tmp=None):
    """Write ``path`` through a temporary file beside it and os.replace, so a reader never sees
    half a file and an interrupted writer leaves the old one. ``content``: str (text), bytes, or a
    function given the temporary's path that writes it (a plot's savefig, np.save, a download);
    what fails there removes the temporary and raises. ``tmp``: the temporary's name (default
    ``path + ".tmp"``, fixed because writers of a run folder hold its lock; a writer that holds
    none names its pid). Returns path."""
    tmp = tmp or path + ".tmp"
    try:
        if callable(content):
            content(tmp)
        else:
            with open(tmp, "wb" if isinstance(content, bytes) else "w") as fh:
                fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
