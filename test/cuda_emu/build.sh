#!/bin/sh
# Builds build/emu/libanvil_cuda_emu.so: native/cuda/*.cu compiled by g++ against the emulator
# in this directory (see cuda_runtime.h), with tiny linear-logprob tiles (16 rows x 128 vocab) so
# the small test shapes cross many tile boundaries. Then run the CUDA op tests on it:
#   ANVIL_CUDA_LIB=$PWD/build/emu/libanvil_cuda_emu.so npx vitest run test/cuda.test.ts
# Also build/emu/libnccl_fake.so (fake_nccl.cpp), an NCCL over files that test/nccl.test.ts loads
# through ANVIL_NCCL_LIB next to the emulator.
set -e
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build/emu"
mkdir -p "$out/src"
for f in "$root"/native/cuda/*.cu "$root"/native/cuda/*.cuh; do
  # kernel<<<grid, block>>>(args)  ->  emu::launch(grid, block, kernel)(args)
  sed -E 's/([A-Za-z_][A-Za-z0-9_:]*(<[^<>;]*>)?)<<<(.*)>>>\(/emu::launch(\3, \1)(/' "$f" > "$out/src/$(basename "$f")"
done
cd "$out/src"
objs=""
for f in *.cu; do
  g++ -std=c++20 -O1 -g -fPIC -DANVIL_CUDA_TILE_ROWS=16 -DANVIL_CUDA_TILE_FLOATS=2048 -x c++ -I"$root/test/cuda_emu" -I"$root/native/include" -I. -c "$f" -o "${f%.cu}.o"
  objs="$objs ${f%.cu}.o"
done
g++ -shared -o "$out/libanvil_cuda_emu.so" $objs -lpthread
g++ -std=c++17 -O1 -g -fPIC -shared -Wall -o "$out/libnccl_fake.so" "$root/test/cuda_emu/fake_nccl.cpp"
echo "$out/libanvil_cuda_emu.so"
