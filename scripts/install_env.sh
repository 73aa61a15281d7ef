#!/usr/bin/env bash
# Create, or reuse when the pins have not changed, the pinned Python environment of this project.
# The environment lives outside the checkout (so fresh clones and CI reuse it), keyed by the Python
# version, the machine and requirements/lock.txt; `.venv` in the checkout links to it. Prints its path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
key=$({
    "$py" -c 'import platform, sys; print(sys.version, platform.machine())'
    cat "$root/requirements/lock.txt"
} | sha256sum | cut -c1-16)
base=${OMNITRAIN_ENV_DIR:-$HOME/.cache/omnitrain}
venv="$base/venv-$key"
mkdir -p "$base"
exec 9>"$base/.install.lock"
flock 9
if [[ ! -f "$venv/.complete" ]]; then
    rm -rf "$venv"
    echo "Creating the environment $venv from requirements/lock.txt (first time only: a few minutes, torch is large)" >&2
    "$py" -m venv "$venv"
    log="$base/install-$key.log"
    if ! "$venv/bin/pip" install --disable-pip-version-check -r "$root/requirements/lock.txt" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "Installing requirements/lock.txt failed; the whole log is $log" >&2
        exit 1
    fi
    touch "$venv/.complete"
fi
ln -sfn "$venv" "$root/.venv"
echo "$venv"
