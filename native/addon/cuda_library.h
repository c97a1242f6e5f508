// The CUDA kernels library (libanvil_cuda, loaded by cuda_binding.cpp) for other bindings that
// must run on its device and stream (nccl_binding.cpp).
#pragma once

namespace anvil {

// A function of libanvil_cuda (prototype in anvil/cuda_api.h), loading the library on first use;
// throws std::runtime_error saying why when the library or the symbol is unavailable.
void* cuda_symbol(const char* name);

}  // namespace anvil
