# Source this (bash): the one place that sets the environment every dhn entry point needs.
#   . tools/env.sh
# Sets DHN_ROOT, CAFFE_ROOT, PATH (caffe), PYTHONPATH (pycaffe, layers/, tools/, the venv's
# site-packages) and LD_LIBRARY_PATH. A user's own Caffe built WITH_PYTHON_LAYER is used
# when CAFFE_ROOT is set before sourcing (it must hold bin/caffe and python/caffe).
DHN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DHN_ROOT
export DHN_VENV=${DHN_VENV:-$DHN_ROOT/.venv}
if [ -z "${CAFFE_ROOT:-}" ]; then
  CAFFE_ROOT=$(PYTHON="$DHN_VENV/bin/python" bash "$DHN_ROOT/tools/build/build_caffe.sh" --prefix) || {
    echo "dhn: Caffe is not built yet: run 'make setup' (or set CAFFE_ROOT to your own Caffe)" >&2
    return 1 2>/dev/null || exit 1; }
fi
export CAFFE_ROOT
# The caffe binary embeds the *base* interpreter, not the venv: the venv's site-packages
# must be on PYTHONPATH for a Python layer to import numpy (docs/INSTALL.md).
# pycaffe: our install tree puts it in lib/python3/dist-packages, a source-tree build in python/.
_dhn_pycaffe=$CAFFE_ROOT/python
[ -d "$CAFFE_ROOT/lib/python3/dist-packages/caffe" ] && _dhn_pycaffe=$CAFFE_ROOT/lib/python3/dist-packages
# DHN_SITE names it directly where the Python is no venv (the GPU bundle, tools/gpu/).
_dhn_site=${DHN_SITE:-}
[ -n "$_dhn_site" ] || _dhn_site=$("$DHN_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export PYTHONPATH="$DHN_ROOT/layers:$DHN_ROOT/tools:$_dhn_pycaffe:$_dhn_site${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$DHN_VENV/bin:$CAFFE_ROOT/bin:$PATH"
export LD_LIBRARY_PATH="$CAFFE_ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# a CUDA build's cuBLAS/cuRAND from PyPI wheels (recorded by the build)
_dhn_ld=$(sed -n 's/^ld_library_path //p' "$CAFFE_ROOT/BUILD_INFO" 2>/dev/null)
[ -n "$_dhn_ld" ] && export LD_LIBRARY_PATH="$_dhn_ld:$LD_LIBRARY_PATH"
unset _dhn_ld
unset _dhn_site _dhn_pycaffe
