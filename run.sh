#!/usr/bin/env bash
# The two README commands:
#   ./run.sh notebooks   set up .venv if needed, then run every numbered notebook top to bottom
#                        (executed copies in build/notebooks/, figures in SampleImages/)
#   ./run.sh tests       set up .venv if needed, then run the whole test suite (unit tests and
#                        every notebook under nbval; outputs go to a temporary folder)
# Set-up is skipped when .venv already matches pyproject.toml, so re-runs start at once.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
STAMP=.venv/.emogan-setup

setup() {
    local want
    want=$(cat pyproject.toml run.sh | sha1sum | cut -c1-40)
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        return
    fi
    "$PYTHON" -c 'import sys; assert sys.version_info[:2] >= (3, 10), "emogan needs Python 3.10+ (3.11 tested)"'
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[notebooks,test]"
    echo "$want" > "$STAMP"
}

run_notebooks() {
    mkdir -p build/notebooks
    for nb in notebooks/[0-9][0-9]_*.ipynb; do
        echo "== $nb"
        .venv/bin/python -m jupyter nbconvert --to notebook --execute \
            --ExecutePreprocessor.timeout=1800 --output-dir build/notebooks "$nb"
    done
}

run_tests() {
    local tmp status
    tmp=$(mktemp -d)
    # Tests and notebooks write checkpoints and figures to a temporary folder; the embedded
    # corpus in data/embedded is shared (it is deterministic and made once).
    set +e
    EMOGAN_WORK="$tmp/work" EMOGAN_FIGURES="$tmp/figures" MPLBACKEND=Agg \
        .venv/bin/python -m pytest tests notebooks --nbval-lax --nbval-current-env \
        --durations=15 "$@"
    status=$?
    set -e
    rm -rf "$tmp"
    return $status
}

case "${1:-}" in
    notebooks) setup; run_notebooks ;;
    tests) setup; shift; run_tests "$@" ;;
    *) echo "usage: ./run.sh notebooks | ./run.sh tests [pytest options]" >&2; exit 2 ;;
esac
