#!/usr/bin/env bash
# One command that installs synthgate into ./.venv from a clean clone (Python 3.11).
#
# smartnoise-synth 1.0.8 declares opacus<0.15, which cannot sit beside opacus 1.6 (the release
# whose accountant we trust). pyproject.toml declares everything smartnoise-synth really needs,
# so we install the project first and then smartnoise-synth itself with --no-deps.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/python -m pip install --quiet --no-deps "smartnoise-synth==1.0.8"
.venv/bin/python -c "import snsynth, opacus, mbi; assert opacus.__version__.startswith('1.6'), opacus.__version__"
echo "synthgate installed in .venv (activate with: source .venv/bin/activate)"
