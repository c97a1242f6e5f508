// Which vector ISA runs the exp-bound loops of the fused softmax kernels (log-prob + entropy,
// the fused LM head's log-sum-exp, sampling): native/cpu/softmax_kernels.h. The default is the
// widest usable ("avx512" where the CPU has it, else "avx2"); ANVIL_SIMD=avx2 at startup or
// set_simd_isa() chooses another.
#pragma once
#include <string>
#include <vector>

namespace anvil::cpu {

// The ISAs usable here: "avx2", then "avx512" when the build and the CPU have it.
std::vector<std::string> simd_isas();
// Selects one of simd_isas(); throws std::invalid_argument otherwise.
void set_simd_isa(const std::string& name);
// The one in use.
std::string simd_isa_selected();

}  // namespace anvil::cpu
