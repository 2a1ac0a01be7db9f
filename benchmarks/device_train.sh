#!/usr/bin/env bash
# Train the 16-style default model on a lent GPU machine (the device tool), under JAX with no
# TensorFlow there. Three commands:
#
#   here:   bash benchmarks/device_train.sh prepare
#           fills .devcarry/ (git-ignored, 51 MiB): the keras wheel and the two packages it needs
#           that the machine lacks, the VGG19 file, the 16 paintings, the training photos resized to
#           the 256-px training scale. Each device call carries it: run(..., carry=[".devcarry"]).
#   there:  bash benchmarks/device_train.sh start MINUTES [NAME="cin-style-train flags" ...]
#           installs the wheels; runs every variant's probe at once (PROBE_STEPS steps) to size a
#           cosine schedule that ends after MINUTES of training; starts each variant in its own
#           session under /tmp/cin_run/NAME (the runs outlive the command: the machine stays lent
#           while calls follow each other within its idle time); watches until CALL_SECONDS after
#           the command began (default 570), then packs.
#   there:  bash benchmarks/device_train.sh watch SECONDS
#           watches for SECONDS or until every run ended, then packs.
# Packing copies into $OUT/NAME.tar.* (15 MB pieces; `cat NAME.tar.* | tar -xf -`) each run's newest
# checkpoint (weights, state, seed; not its Gram tables or Adam moments), model.keras once written,
# its newest sample sheet and its log. Progress lines in the output give images/s.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.devcarry
RUN=/tmp/cin_run
DATA=${CIN_STYLE_DATA:-$(cd .. && pwd)/shared/data}
PYTHON=${PYTHON:-python3}
# Overridable for a dry run on a CPU: BATCH=2 IMAGE=64 PROBE_STEPS=20 SKIP_INSTALL=1.
BATCH=${BATCH:-16}
IMAGE=${IMAGE:-256}
PROBE_STEPS=${PROBE_STEPS:-200}
STYLES="van_gogh_starry_night munch_the_scream turner_shipwreck_of_the_minotaur matisse_woman_with_a_hat
gauguin_te_fare kandinsky_composition_vii picabia_udnie monet_water_lilies_1906
monet_san_giorgio_maggiore_at_dusk degas_dance_foyer_at_the_opera seurat_sunday_on_la_grande_jatte
delaunay_portrait_of_jean_metzinger hokusai_great_wave hiroshige_numazu_tokaido
huang_gongwang_dwelling_in_the_fuchun_mountains claude_lorrain_harbour_with_large_tower"
# The default model's recipe; `start` adds --steps (from the measured rate) and --max_minutes.
TRAIN_FLAGS="--content=$CARRY/content --image_size=$IMAGE --batch_size=$BATCH
--learning_rate=1e-3 --lr_schedule=cosine --warmup_steps=300 --style_weight=0.3 --seed=0
--dtype_policy=mixed_bfloat16 --steps_per_execution=10 --checkpoint_every=500 --keep_checkpoints=2
--sample_every=2000 --notensorboard --vgg_weights=$CARRY/vgg19_notop.h5"

style_paths() {
  local list="" name
  for name in $STYLES; do list="$list,$CARRY/styles/$name.jpg"; done
  echo "${list#,}"
}

prepare() {
  rm -rf "$CARRY" && mkdir -p "$CARRY/styles" "$CARRY/content" "$CARRY/whl"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$CARRY/whl" "keras==$(KERAS_BACKEND=jax $PYTHON -c 'import keras; print(keras.__version__)')" namex optree
  cp "$DATA/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" "$CARRY/vgg19_notop.h5"
  local name
  for name in $STYLES; do cp "$DATA/styles/$name.jpg" "$CARRY/styles/"; done
  $PYTHON - "$DATA/content/train" "$CARRY/content" <<'EOF'
import pathlib, sys
from PIL import Image
src, dst = map(pathlib.Path, sys.argv[1:])
for path in sorted(src.glob("*.jpg")):
    with Image.open(path) as image:
        scale = 256 / min(image.size)
        size = (max(256, round(image.size[0] * scale)), max(256, round(image.size[1] * scale)))
        image.convert("RGB").resize(size, Image.LANCZOS).save(dst / path.name, quality=90)
EOF
  du -sh "$CARRY"
}

setup_remote() {
  [ -n "${SKIP_INSTALL:-}" ] || $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$CARRY"/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
  export JAX_COMPILATION_CACHE_DIR=/tmp/jax_cache
  $PYTHON -c "import keras, jax; print('keras', keras.__version__, 'jax', jax.__version__, jax.devices())"
}

# Images per second of the real recipe, every variant's probe running at once (as the runs will):
# PROBE_STEPS steps after compilation, in throw-away folders. Prints the slowest variant's rate.
probe() {
  local spec name flags pids=()
  for spec in "$@"; do
    name=${spec%%=*}; flags=${spec#*=}
    # shellcheck disable=SC2086
    $PYTHON -m cin_style.cli.train --styles="$(style_paths)" $TRAIN_FLAGS --output_dir=/tmp/probe_$name \
      --steps="$PROBE_STEPS" --checkpoint_every="$PROBE_STEPS" --sample_every=100000 $flags --warmup_steps=0 \
      > /tmp/probe_$name.log 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  for spec in "$@"; do
    name=${spec%%=*}
    tr '\r' '\n' < /tmp/probe_$name.log | grep -o 'img/s: [0-9.]*' | tail -n $((PROBE_STEPS / 20)) |
      awk -v n="$name" '{s += $2; k++} END {printf "PROBE %s images/s %.1f\n", n, s / k}'
    rm -rf /tmp/probe_$name
  done
}

# Copies what a run has so far into $OUT/<name>.tar.* (15 MB pieces): the newest checkpoint's
# weights, state and seed (its Gram tables and Adam moments stay there), model.keras once written,
# the newest sample sheet and the log.
pack() {
  mkdir -p "$OUT"
  local dir name ckpt sheet stage
  for dir in $RUN/*/; do
    name=$(basename "$dir"); stage=/tmp/pack/$name
    rm -rf "$stage" && mkdir -p "$stage"
    ckpt=$(ls -d "$dir"checkpoints/ckpt-* 2>/dev/null | sort | tail -1 || true)
    if [ -n "$ckpt" ]; then
      mkdir -p "$stage/checkpoint"
      cp "$ckpt"/transformer.weights.h5 "$ckpt"/state.json "$ckpt"/seed.npy "$stage/checkpoint/"
    fi
    [ -f "$dir"model.keras ] && cp "$dir"model.keras "$dir"styles.json "$stage/"
    sheet=$(ls "$dir"samples/*.png 2>/dev/null | sort | tail -1 || true)
    [ -n "$sheet" ] && cp "$sheet" "$stage/"
    tr '\r' '\n' < "$dir"train.log | grep -v '^\s*$' | awk 'NR % 20 == 1 || !/step/' > "$stage/train.log" || true
    tar -C /tmp/pack -cf - "$name" | split -b 15M - "$OUT/$name.tar."
  done
  ls -la "$OUT"
}

watch() {
  local until=$(( $(date +%s) + $1 )) dir alive
  while [ "$(date +%s)" -lt "$until" ]; do
    alive=0
    for dir in $RUN/*/; do kill -0 "$(cat "$dir"pid)" 2>/dev/null && alive=1; done
    [ $alive = 1 ] || { echo "all runs ended"; break; }
    sleep 10
  done
  for dir in $RUN/*/; do
    echo "== $(basename "$dir"):"; tr '\r' '\n' < "$dir"train.log | grep -v '^\s*$' | tail -2 | cut -c1-300
  done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null || true
  pack
}

case "${1:-}" in
  prepare) prepare ;;
  start)
    began=$(date +%s)
    minutes=${2:?minutes of training}; shift 2
    [ $# -gt 0 ] || set -- "default="
    setup_remote
    # Each variant's JAX process takes a share of the GPU's memory.
    export XLA_PYTHON_CLIENT_MEM_FRACTION=$(python3 -c "print(round(0.9 / $#, 2))")
    rate=$(probe "$@" | tee /dev/stderr | awk '/^PROBE/ {print $4}' | sort -n | head -1)
    case "$rate" in [0-9]*) ;; *) echo "probe failed:"; tail -n 5 /tmp/probe_*.log; exit 1 ;; esac
    steps=$($PYTHON -c "print(max(500, int(float('$rate') / $BATCH * 60 * $minutes) // 500 * 500))")
    echo "planned steps: $steps over $minutes minutes, $# run(s) at once"
    for spec in "$@"; do
      name=${spec%%=*}; flags=${spec#*=}
      mkdir -p $RUN/$name
      # shellcheck disable=SC2086
      setsid nohup $PYTHON -m cin_style.cli.train --styles="$(style_paths)" $TRAIN_FLAGS --output_dir=$RUN/$name \
        --steps="$steps" --max_minutes="$minutes" $flags > $RUN/$name/train.log 2>&1 < /dev/null &
      echo $! > $RUN/$name/pid
    done
    watch $(( began + ${CALL_SECONDS:-570} - $(date +%s) ))
    ;;
  watch) export PYTHONPATH=/tmp/site:$PWD; watch "${2:?seconds}" ;;
  *) echo "usage: $0 prepare | start MINUTES [NAME=\"FLAGS\" ...] | watch SECONDS" >&2; exit 2 ;;
esac
