# Sourced by the other scripts: points cargo (tch's build script) at the project's libtorch.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
site="$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export LIBTORCH="$site/torch"
export LIBTORCH_CXX11_ABI=1
unset LIBTORCH_USE_PYTORCH
# The Python bindings (python/) build against the project's Python.
export PYO3_PYTHON="$root/.venv/bin/python"
