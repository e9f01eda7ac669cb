#ifndef PIANOLA_COMMON_HASH_H_
#define PIANOLA_COMMON_HASH_H_

// Stable 64-bit hashing: the same bytes give the same value on every machine,
// build and run (unlike absl::Hash, which is salted per process). Used for
// dataset fingerprints and for the pure window function, so a value computed
// here is part of the data contract: changing these functions changes which
// windows every existing (dataset, seed) pair produces.

#include <cstdint>
#include <cstring>
#include <string_view>

namespace pianola {

// SplitMix64 finalizer: a bijective mix of one 64-bit word.
constexpr uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Combines words order-sensitively: HashCombine(HashCombine(seed, a), b).
constexpr uint64_t HashCombine(uint64_t seed, uint64_t value) {
  return Mix64(seed ^ Mix64(value + 0x632be59bd9b4e019ULL));
}

// Incremental FNV-1a-style byte hasher with a SplitMix finish; fast enough for
// fingerprinting gigabytes of audio (8 bytes per step).
class StableHasher {
 public:
  void Update(const void* data, size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    while (size >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      state_ = (state_ ^ w) * 0x100000001b3ULL;
      state_ ^= state_ >> 29;
      p += 8;
      size -= 8;
    }
    while (size > 0) {
      state_ = (state_ ^ *p++) * 0x100000001b3ULL;
      --size;
    }
  }
  void Update(std::string_view s) {
    UpdateWord(s.size());
    Update(s.data(), s.size());
  }
  void UpdateWord(uint64_t w) { state_ = HashCombine(state_, w); }
  uint64_t Finish() const { return Mix64(state_); }

 private:
  uint64_t state_ = 0xcbf29ce484222325ULL;
};

}  // namespace pianola

#endif  // PIANOLA_COMMON_HASH_H_
