"""Subprocesses of the tests, each under a time limit: a hung command fails its test with a clear
message instead of holding CI until its own cut."""
import os
import signal
import subprocess

import pytest


def run(cmd, timeout, **kw):
    """subprocess.run(cmd, capture_output=True, text=True) in a session of its own; past timeout
    seconds its whole process group (a dhn tool and the caffe it started) is killed and the test
    fails, naming the command, the limit and the end of its output."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail("%s ran past its %d s limit and was killed; the end of its output:\n%s"
                    % (" ".join(map(str, cmd)), timeout, (out + err)[-2000:]), pytrace=False)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
