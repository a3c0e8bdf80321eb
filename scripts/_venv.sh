# Sourced by the scripts: create .venv with the interpreter on PATH (Python >= 3.11) and
# install statebox with every extra the tests use. Re-running is cheap when up to date.
VENV="${STATEBOX_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
stamp="$VENV/.statebox-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet -e ".[${STATEBOX_EXTRAS:-dev,postgres,server,runner,secrets,atlan,dapr}]"
  touch "$stamp"
fi
