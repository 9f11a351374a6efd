#!/usr/bin/env bash
# One prepared check of the engine on a real GPU, offline: only this working tree and the node_modules
# carried with it (no apt, no npm registry, no download). In order, each part with its own time budget
# so that the whole stays under 8 minutes:
#   1. the adapter the engine picks on the default backend (Vulkan/Metal/D3D12), its features and limits;
#      refuses (exit 3) when that adapter is a software one (llvmpipe/lavapipe/SwiftShader) and says
#      what is missing (Vulkan loader, a GPU driver's ICD, device nodes);
#   2. the GPU test suites on that adapter (DISTILLKAC_TEST_BACKENDS=default);
#   3. the full bench on that adapter into OUT/bench.json (and OUT/bench.md);
#   4. 200 training steps of the `base` preset at batch 128, timed (OUT/train-base/log.jsonl).
# Everything it prints also goes to OUT/gpu-check.log; OUT/summary.txt gets one line per part.
#
# Usage: bash scripts/gpu-check.sh [OUT]          (OUT defaults to $OUT, else ./gpu-check-out)
# Env:   GPU_CHECK_BUDGETS="probe tests bench train" seconds (default "45 170 170 75": 460 s in all)
#        GPU_CHECK_PARTS="probe tests bench train"  which parts to run (the probe always runs)
#        GPU_CHECK_ALLOW_SOFTWARE=1                 go on with a software adapter (to try the script
#                                                   without a GPU; the figures are then not a GPU's)
#        DISTILLKAC_ADAPTER=name                    pin an adapter by name (passed to the engine)
# Exit:  0 all parts passed; 1 a part failed or ran out of time; 3 no usable GPU adapter.
set -uo pipefail
cd "$(dirname "$0")/.."

out=${1:-${OUT:-gpu-check-out}}
mkdir -p "$out" || { echo "gpu-check: cannot create the output folder $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
log="$out/gpu-check.log"
summary="$out/summary.txt"
: >"$log"
: >"$summary"
exec > >(tee -a "$log") 2>&1

read -r b_probe b_tests b_bench b_train <<<"${GPU_CHECK_BUDGETS:-45 170 170 75}"
parts=" ${GPU_CHECK_PARTS:-probe tests bench train} "
status=0
t_start=$(date +%s)

say() { echo "gpu-check: $*"; }
record() { echo "$*" | tee -a "$summary"; }

# Run a part under `timeout`; record its status and wall time.
part() {
  local name=$1 budget=$2
  shift 2
  say "== $name (budget ${budget} s): $*"
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=10 "$budget" "$@"
  rc=$?
  local dt=$(($(date +%s) - t0))
  if [ "$rc" = 0 ]; then
    record "$name: ok in ${dt} s"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    record "$name: TIMED OUT after ${dt} s (budget ${budget} s; raise it with GPU_CHECK_BUDGETS)"
    status=1
  else
    record "$name: FAILED (exit $rc) after ${dt} s"
    status=1
  fi
  return "$rc"
}

# ---- what is there, before anything is started ------------------------------------------------
missing=()
command -v node >/dev/null || missing+=("node (>= 20) is not on PATH")
[ -d node_modules/webgpu ] || missing+=("node_modules/webgpu (Dawn's Node binding): carry node_modules with the working tree (npm ci on a machine with network, then copy)")
[ -d node_modules/tsx ] || missing+=("node_modules/tsx: carry node_modules with the working tree")
if [ "${#missing[@]}" -gt 0 ]; then
  for m in "${missing[@]}"; do say "missing: $m"; done
  record "probe: cannot start (${#missing[@]} missing)"
  exit 3
fi
say "node $(node --version), $(nproc) CPUs, $(uname -srm); output in $out"

# Why Vulkan may not come up: the loader, the ICD manifests, the device nodes. Printed only on failure.
diagnose() {
  say "--- what the Vulkan path needs ---"
  if ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    say "Vulkan loader: $(ldconfig -p | grep -m1 'libvulkan\.so\.1' | sed 's/.*=> //')"
  else
    say "MISSING: the Vulkan loader libvulkan.so.1 (Debian/Ubuntu package libvulkan1; NVIDIA's driver installs it too)"
  fi
  local icds=()
  if [ -n "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]; then
    say "VK_ICD_FILENAMES/VK_DRIVER_FILES=${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-} (the loader reads only these)"
    IFS=: read -r -a icds <<<"${VK_DRIVER_FILES:-$VK_ICD_FILENAMES}"
  else
    for d in /etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
      for f in "$d"/*.json; do [ -e "$f" ] && icds+=("$f"); done
    done
  fi
  local gpu_icd=0
  for f in "${icds[@]}"; do
    if [ ! -e "$f" ]; then say "ICD manifest $f: MISSING"; continue; fi
    local lib
    lib=$(grep -o '"library_path"[^,}]*' "$f" | sed 's/.*: *"\(.*\)"/\1/')
    say "ICD manifest $f -> $lib"
    case "$f" in *lvp_icd*|*swiftshader*) ;; *nvidia*|*radeon*|*amd*|*intel*) gpu_icd=1 ;; esac
  done
  [ "${#icds[@]}" = 0 ] && say "MISSING: no Vulkan ICD manifest (/usr/share/vulkan/icd.d/*.json, /etc/vulkan/icd.d/*.json)"
  if { [ -e /dev/nvidia0 ] || command -v nvidia-smi >/dev/null; } && ! printf '%s\n' "${icds[@]}" | grep -q nvidia; then
    say "MISSING: NVIDIA's Vulkan ICD (nvidia_icd.json, shipped with the driver's Vulkan/GL part, e.g. libnvidia-gl-<version>); the kernel driver alone gives no Vulkan"
  fi
  [ "$gpu_icd" = 0 ] && say "MISSING: a GPU driver's ICD (NVIDIA: nvidia_icd.json from the driver's Vulkan part, e.g. libnvidia-gl-<version>; AMD/Intel: mesa-vulkan-drivers' radeon_icd/intel_icd)"
  if command -v nvidia-smi >/dev/null; then
    say "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"
  fi
  ls /dev/nvidia0 /dev/dri/renderD* >/dev/null 2>&1 && say "device nodes: $(ls /dev/nvidia0 /dev/dri/renderD* 2>/dev/null | tr '\n' ' ')" ||
    say "MISSING: GPU device nodes (/dev/nvidia0 or /dev/dri/renderD*): in a container, pass the GPU through"
}

# ---- 1. the adapter ------------------------------------------------------------------------------
# The engine's own choice (dawnGpu, backend 'default'), and what Dawn offers with each power preference.
probe_js='
const { create } = await import("webgpu");
const { dawnGpu } = await import("./src/engine/runtime/dawn.ts");
for (const pp of ["high-performance", "low-power"]) {
  const a = await create([]).requestAdapter({ powerPreference: pp });
  console.log(`dawn offers (${pp}): ${a ? `${a.info.vendor} ${a.info.architecture} ${a.info.description} (${a.info.device})` : "none"}`);
}
let g;
try { g = await dawnGpu({ backend: "default" }); } catch (e) { console.log(`engine: ${e.message}`); process.exit(3); }
const a = g.adapter;
console.log(`engine adapter: ${JSON.stringify(a)}`);
console.log(`features: ${[...g.features].sort().join(", ")}`);
const L = g.limits;
console.log(`limits: maxBufferSize ${L.maxBufferSize}, maxStorageBufferBindingSize ${L.maxStorageBufferBindingSize}, maxStorageBuffersPerShaderStage ${L.maxStorageBuffersPerShaderStage}, maxComputeInvocationsPerWorkgroup ${L.maxComputeInvocationsPerWorkgroup}, maxComputeWorkgroupStorageSize ${L.maxComputeWorkgroupStorageSize}`);
const software = /llvmpipe|lavapipe|swiftshader|softpipe/i.test(`${a.description} ${a.device ?? ""} ${a.architecture}`);
g.destroy();
if (software) { console.log("engine adapter is a SOFTWARE rasterizer, not a GPU"); process.exit(4); }
'
say "== probe (budget ${b_probe} s)"
timeout --kill-after=5 "$b_probe" node --import tsx --input-type=module -e "$probe_js" 2>&1 | grep -v 'artificially reduced'
rc=${PIPESTATUS[0]}
if [ "$rc" = 4 ] && [ "${GPU_CHECK_ALLOW_SOFTWARE:-0}" = 1 ]; then
  record "probe: software adapter only (GPU_CHECK_ALLOW_SOFTWARE=1: going on; these are not a GPU's figures)"
elif [ "$rc" != 0 ]; then
  case "$rc" in
    4) record "probe: NO GPU: the only Vulkan adapter is a software one (see below what is missing)" ;;
    124|137) record "probe: TIMED OUT after ${b_probe} s (Dawn hung while enumerating adapters)" ;;
    *) record "probe: NO ADAPTER (exit $rc; see below what is missing)" ;;
  esac
  diagnose
  exit 3
else
  record "probe: ok (GPU adapter above)"
fi

export DISTILLKAC_BACKEND=default DISTILLKAC_TEST_BACKENDS=default

# ---- 2. the GPU test suites on that adapter ------------------------------------------------------
if [[ "$parts" == *" tests "* ]]; then
  suites=$(grep -l "helpers/gpu" test/*.test.ts | tr '\n' ' ')
  part tests "$b_tests" npx --no-install vitest run $suites --reporter=default --reporter=json --outputFile.json="$out/tests.json"
fi

# ---- 3. the full bench ---------------------------------------------------------------------------
if [[ "$parts" == *" bench "* ]]; then
  part bench "$b_bench" npx --no-install tsx bench/run.ts --backend default --json "$out/bench.json" --md "$out/bench.md"
fi

# ---- 4. 200 steps of the base teacher at batch 128 -------------------------------------------------
if [[ "$parts" == *" train "* ]]; then
  rm -rf "$out/train-base"
  part train "$b_train" node bin/distillkac.mjs train --preset base --batch 128 --steps "${GPU_CHECK_TRAIN_STEPS:-200}" \
    --out "$out/train-base" --grids false --checkpoint-every 100000 --log-every 50 --backend default
  if [ -s "$out/train-base/log.jsonl" ]; then
    # elapsedSec of the last line covers the steps only (not start-up or the first compile's wait before step 1)
    node -e '
      const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
      const l = lines[lines.length - 1];
      console.log(`train: ${l.step} steps of base at batch 128 in ${l.elapsedSec.toFixed(1)} s: ${(l.step / l.elapsedSec).toFixed(2)} steps/s, ${(128 * l.step / l.elapsedSec).toFixed(0)} images/s, last loss ${l.loss.toPrecision(4)}`);
    ' "$out/train-base/log.jsonl" | tee -a "$summary"
  fi
fi

record "total: $(($(date +%s) - t_start)) s"
say "summary ($summary):"
cat "$summary"
exit "$status"
