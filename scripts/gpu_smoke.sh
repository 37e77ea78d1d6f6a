#!/usr/bin/env bash
# GPU smoke test (issue 14): every launcher path on this machine's GPUs, a few steps each, bf16, about five
# minutes in all. Prints PASS/FAIL per path and exits with the number of failures. Report what it printed
# (and $OUT/env.txt) in docs/gpu.md.
#
#   bash scripts/gpu_smoke.sh                 # every GPU of this machine
#   NGPU=2 bash scripts/gpu_smoke.sh          # the first two
#   PATHS="pretrain-ddp clip-text-ddp" bash scripts/gpu_smoke.sh   # some paths only
#
# Paths: LOLBERT pretraining, LOLBERT fine-tuning and CLIP with the text tower training (freeze_text=false),
# each under DDP (configs/accelerate/multi_gpu.yaml; one GPU: a plain single process) and DeepSpeed ZeRO-2
# (configs/accelerate/deepspeed_zero2.yaml). Needs a CUDA build of torch, deepspeed for the DeepSpeed paths,
# data/raw and the mini benchmark (built into out/mini-benchmark first when missing, about a minute).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu_smoke}
LIMIT=${LIMIT:-300}  # seconds per path; a hang is a failure
PATHS=${PATHS:-"pretrain-ddp pretrain-deepspeed finetune-ddp finetune-deepspeed clip-text-ddp clip-text-deepspeed"}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

NGPU=${NGPU:-$($PY -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)}
if [ "${NGPU:-0}" -lt 1 ]; then
  echo "no CUDA device visible to torch ($PY): nothing to smoke-test"
  exit 2
fi
rm -rf "$OUT" && mkdir -p "$OUT"
{ date -u; nvidia-smi -L 2>&1; git rev-parse HEAD 2>&1
  $PY -c "import torch, accelerate, transformers; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA', '| torch', torch.__version__, 'cuda', torch.version.cuda, '| accelerate', accelerate.__version__, '| transformers', transformers.__version__)"
  $PY -c "import deepspeed; print('deepspeed', deepspeed.__version__)" 2>&1 | tail -1; } > "$OUT/env.txt"

DATA=out/mini-benchmark
if [ ! -f "$DATA/build.json" ]; then
  echo "building the mini benchmark into $DATA ..."
  $PY scripts/build_benchmarks.py --config configs/data/mini.yaml > "$OUT/build.log" 2>&1 || { echo "FAIL  mini benchmark build ($OUT/build.log)"; exit 1; }
fi

PORT=$((29600 + RANDOM % 300))
launcher() {  # $1: ddp | deepspeed
  PORT=$((PORT + 1))
  if [ "$1" = deepspeed ]; then
    echo "$PY -m accelerate.commands.launch --config_file configs/accelerate/deepspeed_zero2.yaml --num_processes $NGPU --main_process_port $PORT"
  elif [ "$NGPU" -gt 1 ]; then
    echo "$PY -m accelerate.commands.launch --config_file configs/accelerate/multi_gpu.yaml --num_processes $NGPU --main_process_port $PORT"
  else
    echo "$PY -m accelerate.commands.launch --num_processes 1 --mixed_precision bf16 --main_process_port $PORT"
  fi
}

# A path passes when its command exits 0 within LIMIT and the file it must write exists.
declare -a RESULTS
FAILED=0
check() {  # name, expected file, command...
  local name=$1 expect=$2
  shift 2
  case " $PATHS " in *" $name "*) ;; *) return ;; esac
  local t0=$SECONDS
  timeout -k 20 "$LIMIT" "$@" > "$OUT/$name.log" 2>&1
  local rc=$? secs=$((SECONDS - t0))
  if [ $rc -eq 0 ] && [ -e "$expect" ]; then
    RESULTS+=("PASS  $name  (${secs} s)")
  else
    local why="exit $rc"; [ $rc -eq 124 ] && why="hung past $LIMIT s"; [ $rc -eq 0 ] && why="no $expect"
    RESULTS+=("FAIL  $name  ($why, ${secs} s; $OUT/$name.log)")
    FAILED=$((FAILED + 1))
  fi
  echo "${RESULTS[-1]}"
}

PRE="--config configs/lolbert/mini.yaml heldout_benchmark=null max_nt=510 batch_size=32 steps=40 warmup_steps=5
     log_every=5 eval_every=20 save_every=20 eval_fragments=256 threads=0 mixed_precision=bf16"
check pretrain-ddp "$OUT/pretrain-ddp/final/model.safetensors" \
  $(launcher ddp) scripts/pretrain_lolbert.py $PRE out="$OUT/pretrain-ddp"
check pretrain-deepspeed "$OUT/pretrain-deepspeed/final/model.safetensors" \
  $(launcher deepspeed) scripts/pretrain_lolbert.py $PRE out="$OUT/pretrain-deepspeed"

LOLBERT="$OUT/pretrain-ddp/final"
[ -f "$LOLBERT/model.safetensors" ] || LOLBERT=models/lolbert-mini  # the DDP pretraining failed: go on with the shipped one
FT="--config configs/lolbert/finetune_mini.yaml model=$LOLBERT data=$DATA benchmark=III epochs=2 batch_size=16
    mixed_precision=bf16 threads=0"
check finetune-ddp "$OUT/finetune-ddp/metrics.json" \
  $(launcher ddp) scripts/finetune_lolbert.py $FT out="$OUT/finetune-ddp"
check finetune-deepspeed "$OUT/finetune-deepspeed/metrics.json" \
  $(launcher deepspeed) scripts/finetune_lolbert.py $FT out="$OUT/finetune-deepspeed"

CLIP="--config configs/clip/mini.yaml model.dna_encoder=$LOLBERT model.dna_head=linear model.window_nt=510
      model.freeze_text=false data.benchmark=III optim.batch_size=$((16 * NGPU)) optim.epochs=2
      optim.mixed_precision=bf16 eval.each_epoch=false eval.select=last checkpoint_every=5 trackers=[]
      cache_dir=$OUT/cache"
check clip-text-ddp "$OUT/clip-text-ddp/final/model.safetensors" \
  $(launcher ddp) train_clip.py $CLIP out="$OUT/clip-text-ddp"
check clip-text-deepspeed "$OUT/clip-text-deepspeed/final/model.safetensors" \
  $(launcher deepspeed) train_clip.py $CLIP out="$OUT/clip-text-deepspeed"

echo
echo "GPU smoke test on $NGPU GPU(s): $(grep -m1 '| torch' "$OUT/env.txt")"
printf '%s\n' "${RESULTS[@]}"
echo "$FAILED failed; logs and outputs in $OUT"
exit "$FAILED"
