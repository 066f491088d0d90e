#include <troupe/engine/host_block_cache.hpp>

#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

namespace troupe::engine {
namespace {

constexpr size_t kMinBlock = size_t{1} << 20;  // smaller blocks come from malloc's heap, resident already
constexpr size_t kAlignment = 64;
constexpr size_t kRounding = 4096;  // whole pages: sizes a few bytes apart share blocks

class BlockCache final : public c10::Allocator {
 public:
  explicit BlockCache(c10::Allocator* fallback) : fallback_(fallback), fallback_delete_(fallback->raw_deleter()) {}

  c10::DataPtr allocate(size_t n) override {
    // A small block keeps the default allocator's deleter: no lock on this path.
    // raw_deallocate() (oneDNN's scratch memory) calls raw_deleter() for any pointer,
    // so release() passes the pointers it does not know on to that deleter.
    if (n < kMinBlock) return fallback_->allocate(n);
    const size_t size = (n + kRounding - 1) / kRounding * kRounding;
    void* p = take(size);
    if (!p) {
      p = std::aligned_alloc(kAlignment, size);
      if (!p) {
        release_all();  // what the cache holds may be what is missing
        p = std::aligned_alloc(kAlignment, size);
      }
      TORCH_CHECK_WITH(OutOfMemoryError, p, "host block cache: cannot allocate ", size, " bytes");
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_[p] = size;
    }
    return {p, p, &BlockCache::release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &BlockCache::release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  void set_cap(int64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.max_cached_bytes = bytes;
    evict_over_cap();
  }
  HostBlockCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  void release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto cap = stats_.max_cached_bytes;
    stats_.max_cached_bytes = 0;
    evict_over_cap();
    stats_.max_cached_bytes = cap;
  }

  static BlockCache* instance;

 private:
  static void release(void* p) { instance->give_back(p); }

  void give_back(void* p) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) {  // a small block: the default allocator's
      lock.unlock();
      fallback_delete_(p);
      return;
    }
    const size_t size = it->second;
    live_.erase(it);
    free_[size].push_back(p);
    order_.push_back({size, p});
    stats_.cached_bytes += static_cast<int64_t>(size);
    evict_over_cap();
  }

  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) {
      ++stats_.misses;
      return nullptr;
    }
    void* p = it->second.back();
    it->second.pop_back();
    if (it->second.empty()) free_.erase(it);
    stats_.cached_bytes -= static_cast<int64_t>(size);
    ++stats_.hits;
    return p;  // its entry in order_ is skipped when reached (no longer in free_)
  }

  /// Frees the oldest cached blocks until the cache is within its cap. Holds mutex_.
  void evict_over_cap() {
    while (stats_.cached_bytes > stats_.max_cached_bytes && !order_.empty()) {
      const auto [size, p] = order_.front();
      order_.pop_front();
      auto it = free_.find(size);
      if (it == free_.end()) continue;
      auto& blocks = it->second;
      for (size_t i = 0; i < blocks.size(); ++i) {
        if (blocks[i] != p) continue;
        blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(i));
        std::free(p);
        stats_.cached_bytes -= static_cast<int64_t>(size);
        break;
      }
      if (blocks.empty()) free_.erase(it);
    }
    // Entries of blocks taken since are stale; drop them once the cache is empty.
    if (stats_.cached_bytes == 0) order_.clear();
  }

  c10::Allocator* fallback_;
  c10::DeleterFnPtr fallback_delete_;
  std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;       // large blocks handed out, by pointer
  std::map<size_t, std::vector<void*>> free_;    // cached blocks by size
  std::deque<std::pair<size_t, void*>> order_;   // cached blocks, oldest first (may be stale)
  HostBlockCacheStats stats_;
};

BlockCache* BlockCache::instance = nullptr;
std::mutex install_mutex;

}  // namespace

bool use_host_block_cache(int64_t max_cached_bytes) {
  if (const char* off = std::getenv("TROUPE_SYSTEM_ALLOCATOR"); off && *off && std::string(off) != "0") return false;
  std::lock_guard<std::mutex> lock(install_mutex);
  if (!BlockCache::instance) {
    auto* fallback = c10::GetDefaultCPUAllocator();
    if (!fallback->raw_deleter()) return false;  // cannot pass small blocks through
    // Never destroyed: tensors freed during exit still come back to it.
    BlockCache::instance = new BlockCache(fallback);
    c10::SetCPUAllocator(BlockCache::instance, /*priority=*/1);
  }
  BlockCache::instance->set_cap(max_cached_bytes);
  return true;
}

HostBlockCacheStats host_block_cache_stats() {
  std::lock_guard<std::mutex> lock(install_mutex);
  return BlockCache::instance ? BlockCache::instance->stats() : HostBlockCacheStats{};
}

void release_host_block_cache() {
  std::lock_guard<std::mutex> lock(install_mutex);
  if (BlockCache::instance) BlockCache::instance->release_all();
}

}  // namespace troupe::engine
