"""tests/faults' injections (loaded from there) plus one for tests/test_slurm.py.

  SSLMEM_FAULT_PAUSE_AFTER  a file moved into place there (``os.replace``) is followed by a pause
                            of the process: it touches $SSLMEM_FAULT_PAUSED (a marker the test
                            waits for) and sleeps, so that a test can ``scancel`` the task or end
                            its time limit at a known point (just after a training checkpoint)
                            rather than racing a 10-second unit
"""

import importlib.util
import os
import sys
import time

_spec = importlib.util.spec_from_file_location("sslmem_test_faults", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "faults", "sitecustomize.py"))
sys.modules[_spec.name] = _faults = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_faults)

_PAUSE_AFTER = [p for p in os.environ.get("SSLMEM_FAULT_PAUSE_AFTER", "").split(os.pathsep) if p]

if _PAUSE_AFTER:
    from fnmatch import fnmatch

    _os_replace = os.replace

    def _replace(src, dst, *args, **kwargs):
        _os_replace(src, dst, *args, **kwargs)
        if any(fnmatch(os.path.abspath(os.fspath(dst)), p) for p in _PAUSE_AFTER):
            with open(os.environ["SSLMEM_FAULT_PAUSED"], "w") as marker:
                marker.write(f"{os.getpid()} {os.fspath(dst)}\n")
            time.sleep(600)  # until SIGTERM (scancel, the time limit) ends it

    os.replace = _replace
