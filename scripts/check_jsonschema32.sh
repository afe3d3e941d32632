#!/usr/bin/env bash
# Run the schema and `beat-backend check' tests under jsonschema 3.2.0, the
# version the BEAT platform pins (beat.core 1.13.5). They compare to the same
# stored texts as the run under the current jsonschema, so a difference
# between the two versions fails here.
#
# usage: [PYTHON=python3] scripts/check_jsonschema32.sh WORKDIR [PYTEST_ARGS...]
#
# WORKDIR receives the virtual environment (WORKDIR/venv, reused when it is
# there). The package is installed editable from this checkout with its
# `test' extra. Exits non-zero when the installation or a test fails.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: [PYTHON=python3] $0 WORKDIR [PYTEST_ARGS...]" >&2
    exit 2
fi
WORK=$1
shift
PYTHON=${PYTHON:-python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$WORK/venv

mkdir -p "$WORK"
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv "$VENV"
fi

echo "jsonschema==3.2.0" >"$WORK/constraints.txt"
echo "== installing $ROOT[test] with jsonschema 3.2.0"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$WORK/constraints.txt" -e "$ROOT[test]" "jsonschema==3.2.0"

# make sure the run below really is the RefResolver path of jsonschema 3.2.0
"$VENV/bin/python" - <<'EOF'
from importlib.metadata import version

from beat_backend._assets import schemas

installed = version("jsonschema")
assert installed == "3.2.0", f"jsonschema {installed} installed, 3.2.0 expected"
assert not schemas.USE_REFERENCING, "jsonschema 3.2.0 must resolve $ref with RefResolver"
print(f"== jsonschema {installed}: $ref through RefResolver")
EOF

cd "$ROOT"
echo "== pytest under jsonschema 3.2.0"
"$VENV/bin/python" -m pytest -p no:cacheprovider \
    tests/unit/_assets/test_schemas.py \
    tests/unit/_assets/test_schema_messages.py \
    tests/unit/_assets/test_schemafast.py \
    tests/unit/_cli/test_cli_check.py \
    tests/unit/_assets/test_toolchain.py \
    tests/unit/_assets/test_experiment.py \
    "$@"
