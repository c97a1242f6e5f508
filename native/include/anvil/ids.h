// Bounds checks for index tensors (token ids, targets, row indices). Kernels validate every
// index before touching memory, so a bad id is a JS RangeError, never a wild read or write.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace anvil::cpu {

// Throws std::out_of_range naming the first id outside [lo, limit): "ids[3] = 70 is out of
// range [0, V = 64)". allow_negative lets "ignore" markers (targets < 0) through.
inline void check_ids(const int32_t* ids, int64_t n, int64_t limit, const char* what, const char* limit_name,
                      bool allow_negative = false) {
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] >= limit || (!allow_negative && ids[i] < 0)) {
      throw std::out_of_range(std::string(what) + "[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                              " is out of range [0, " + limit_name + " = " + std::to_string(limit) + ")");
    }
  }
}

}  // namespace anvil::cpu
