#pragma once
/// XXH64 (Yann Collet's xxHash, 64-bit), streaming: a fast non-cryptographic content
/// hash, about memory speed, for telling whether a file is the one seen before (not
/// for defending against someone forging one).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace troupe {

class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0)
      : lanes_{seed + kPrime1 + kPrime2, seed + kPrime2, seed, seed - kPrime1}, seed_(seed) {}

  void update(const void* data, size_t size) {
    auto p = static_cast<const unsigned char*>(data);
    total_ += size;
    if (buffered_ + size < 32) {
      std::memcpy(buffer_ + buffered_, p, size);
      buffered_ += size;
      return;
    }
    if (buffered_ > 0) {  // complete the buffered stripe first
      const size_t fill = 32 - buffered_;
      std::memcpy(buffer_ + buffered_, p, fill);
      stripe(buffer_);
      p += fill;
      size -= fill;
      buffered_ = 0;
    }
    for (; size >= 32; p += 32, size -= 32) stripe(p);
    std::memcpy(buffer_, p, size);
    buffered_ = size;
  }

  uint64_t digest() const {
    uint64_t h;
    if (total_ >= 32) {
      h = rotl(lanes_[0], 1) + rotl(lanes_[1], 7) + rotl(lanes_[2], 12) + rotl(lanes_[3], 18);
      for (uint64_t lane : lanes_) h = (h ^ round(0, lane)) * kPrime1 + kPrime4;
    } else {
      h = seed_ + kPrime5;
    }
    h += total_;
    const unsigned char* p = buffer_;
    size_t left = buffered_;
    for (; left >= 8; p += 8, left -= 8) h = rotl(h ^ round(0, read64(p)), 27) * kPrime1 + kPrime4;
    if (left >= 4) {
      h = rotl(h ^ (static_cast<uint64_t>(read32(p)) * kPrime1), 23) * kPrime2 + kPrime3;
      p += 4;
      left -= 4;
    }
    for (; left > 0; ++p, --left) h = rotl(h ^ (*p * kPrime5), 11) * kPrime1;
    h ^= h >> 33;
    h *= kPrime2;
    h ^= h >> 29;
    h *= kPrime3;
    h ^= h >> 32;
    return h;
  }

  /// The digest as 16 lowercase hex digits (how the xxhash tools print it).
  std::string hex() const {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(digest()));
    return text;
  }

 private:
  static constexpr uint64_t kPrime1 = 11400714785074694791ULL, kPrime2 = 14029467366897019727ULL,
                            kPrime3 = 1609587929392839161ULL, kPrime4 = 9650029242287828579ULL,
                            kPrime5 = 2870177450012600261ULL;

  static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  static uint64_t round(uint64_t acc, uint64_t input) { return rotl(acc + input * kPrime2, 31) * kPrime1; }
  // Little-endian reads, as the reference defines the hash (x86 and ARM alike).
  static uint64_t read64(const unsigned char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  static uint32_t read32(const unsigned char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  void stripe(const unsigned char* p) {
    for (int i = 0; i < 4; ++i) lanes_[i] = round(lanes_[i], read64(p + 8 * i));
  }

  uint64_t lanes_[4];
  uint64_t seed_;
  uint64_t total_ = 0;
  unsigned char buffer_[32] = {};
  size_t buffered_ = 0;
};

}  // namespace troupe
