#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz with Debian's clang (AddressSanitizer and UBSan)
# and runs each for a while, seeded with the committed fixtures. Not part of the regular build
# or of CI.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 120 s; pickle zip safetensors torch protobuf)
#   scripts/fuzz.sh 120 tflite     the TFLite importer, seeded with ../shared/samples' .tflite files
#
# Environment: FUZZ_BUILD (build folder, default build-fuzz), JOBS (build parallelism, default 2).
# A crash stops that target and leaves the reproducer (crash-*) in $FUZZ_BUILD/artifacts/;
# rerun it with: $FUZZ_BUILD/fuzz_<target> $FUZZ_BUILD/artifacts/crash-...
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
seconds=${1:-120}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pickle zip safetensors torch protobuf)

sanitizers="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link $sanitizers" \
  -DSCALPEL_BUILD_TESTS=OFF -DSCALPEL_BUILD_BENCH=OFF -DSCALPEL_CUDA=OFF >/dev/null
libs=("$build/tensor/libscalpel_tensor.a")
if [[ " ${targets[*]} " == *" tflite "* ]]; then
  # The importer lives in models/ (it builds a GraphSpec): link the libraries under it too.
  cmake --build "$build" -j "${JOBS:-2}" --target scalpel_models
  libs=("$build/models/libscalpel_models.a" "$build/layers/libscalpel_layers.a"
        "$build/autograd/libscalpel_autograd.a" "$build/cuda/libscalpel_cuda.a" "${libs[@]}")
else
  cmake --build "$build" -j "${JOBS:-2}" --target scalpel_tensor
fi

fixtures=$root/tests/fixtures/io
seeds_pickle=("$fixtures"/pickle_values_p*.pkl "$fixtures"/*legacy*.pt)
seeds_zip=("$fixtures"/*.zip "$fixtures"/tiny_zip.pt "$fixtures"/evil_zip.pt)
seeds_safetensors=("$fixtures"/*.safetensors)
seeds_torch=("$fixtures"/*.pt)
seeds_protobuf=(/usr/share/libonnx-testdata/data/node/test_{conv,gemm,resize}*/model.onnx)  # Debian libonnx-testdata
seeds_tflite=("$root"/../shared/samples/weights/tflite/*.tflite)

mkdir -p "$build/artifacts"
for target in "${targets[@]}"; do
  binary=$build/fuzz_$target
  clang++ -std=c++20 -O1 -g -fsanitize=fuzzer $sanitizers -I"$root" \
    "$root/tests/fuzz/fuzz_$target.cpp" "${libs[@]}" \
    -lfmt -lz -fopenmp -lpthread -o "$binary"
  corpus=$build/corpus_$target
  mkdir -p "$corpus"
  seeds_var="seeds_${target}[@]"
  for seed in "${!seeds_var}"; do  # the folder in the name: ONNX's seeds are all model.onnx
    cp "$seed" "$corpus/$(basename "$(dirname "$seed")")_$(basename "$seed")"
  done
  echo "== fuzz_$target for ${seconds}s"
  max_len=65536
  [ "$target" = tflite ] && max_len=4194304  # whole models: a prefix only exercises the errors
  "$binary" "$corpus" -max_total_time="$seconds" -max_len=$max_len -rss_limit_mb=2048 \
    -artifact_prefix="$build/artifacts/" -print_final_stats=1
done
