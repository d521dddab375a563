#!/usr/bin/env bash
# One short run on a GPU machine: the GPU tests, then bench/gpu.py, everything into one folder.
#
#   bench/gpu_check.sh [DIR] [--cpu]     # DIR defaults to $OUT, else ./gpu-check
#   bench/gpu_check.sh --fetch-wheels     # here, with PyPI reachable: fill .whl/ for a bare GPU machine
#
# Under 6 minutes on an H100/H200: wheels ~10 s, GPU tests <= 150 s, bench <= 180 s (its own
# budget, checked inside long variants; its JSON is rewritten after every variant, so a run cut
# short keeps what it measured). --cpu is the same run on a CPU with tiny settings, so a test can
# run this script and it cannot rot.
#
# DIR gets: env.txt (machine, driver, versions), wheels.log, tests.log + tests.xml (JUnit),
# gpu.json + gpu.txt (the bench), summary.json (exit codes and durations of each step).
set -u

# What the GPU image lacks of the project's needs (its torch, numpy, pillow, pyyaml, prometheus-client
# and pytest are used as they are), for its Python 3.12. Versions as tested here.
WHEELS=(av==18.1.0 pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
        paho-mqtt==2.2.0)

out="" cpu=0 fetch=0
for arg in "$@"; do
    case "$arg" in
        --cpu|--dry-run) cpu=1 ;;
        --fetch-wheels) fetch=1 ;;
        *) out="$arg" ;;
    esac
done
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-python3}"
if [ "$fetch" = 1 ]; then
    # .whl/ is in .gitignore: the wheels travel with the working tree, never into a commit.
    exec "$py" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$root/.whl" "${WHEELS[@]}"
fi
out="${out:-${OUT:-gpu-check}}"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
cd "$root"

# A bare GPU machine lacks some of the project's pure-Python needs (and PyAV): install the wheels
# carried with the tree in .whl/, if any, into a folder of their own; none there is fine too.
if compgen -G ".whl/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/birdstream-site .whl/*.whl >"$out/wheels.log" 2>&1 \
        && export PYTHONPATH="/tmp/birdstream-site${PYTHONPATH:+:$PYTHONPATH}"
else
    echo "no .whl/ folder: using what is installed" >"$out/wheels.log"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"

{
    date -u +%FT%TZ
    uname -a
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
    "$py" - <<'EOF' 2>&1
import importlib
for name in ("torch", "numpy", "av", "pydantic", "paho.mqtt", "prometheus_client", "yaml", "PIL"):
    try:
        mod = importlib.import_module(name)
        print(name, getattr(mod, "__version__", "?"))
    except Exception as exc:  # noqa: BLE001 - a report, not a check
        print(name, "MISSING:", exc)
import torch
print("cuda available", torch.cuda.is_available(), "cuda", torch.version.cuda)
EOF
} >"$out/env.txt"

step() {  # step NAME TIMEOUT_S COMMAND...: run, keep exit code and duration for summary.json
    local name="$1" limit="$2"
    shift 2
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    echo "\"$name\": {\"rc\": $rc, \"seconds\": $((SECONDS - t0))}" >>"$out/.steps"
}
: >"$out/.steps"

gpu_tests=(tests/engine/test_classifier_gpu.py tests/model/test_speed_gpu.py tests/ingest/test_hwaccel.py)
if [ "$cpu" = 1 ]; then
    step tests 300 "$py" -m pytest -q -p no:cacheprovider tests/engine/test_classifier_gpu.py \
        --junitxml="$out/tests.xml" >"$out/tests.log" 2>&1
    step bench 300 "$py" bench/gpu.py --device cpu --quick --budget-s 60 --out "$out/gpu.json" \
        >"$out/gpu.txt" 2>"$out/gpu.err"
else
    step tests 150 "$py" -m pytest -q -p no:cacheprovider "${gpu_tests[@]}" \
        --junitxml="$out/tests.xml" >"$out/tests.log" 2>&1
    step bench 200 "$py" bench/gpu.py --cuda-graphs --compile --budget-s 170 --out "$out/gpu.json" \
        >"$out/gpu.txt" 2>"$out/gpu.err"
fi

{
    echo "{\"mode\": \"$([ "$cpu" = 1 ] && echo cpu || echo gpu)\", \"steps\": {"
    paste -sd, "$out/.steps"
    echo "}}"
} >"$out/summary.json"
rm -f "$out/.steps"
cat "$out/gpu.txt" 2>/dev/null | grep -v '^USDT' | tail -40
grep -q '"rc": [1-9]' "$out/summary.json" && exit 1
exit 0
