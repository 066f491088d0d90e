/// SharedMemoryCommunicator: the segment, its barrier of atomics, and the collectives
/// as copies into and out of the ranks' slots.
///
/// Segment layout: a Header (one cache line), one RankControl per rank (one cache line
/// each, so ranks never write the same line), then W slots of slot_bytes, page aligned.
#include <troupe/transport/shm_communicator.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <troupe/common/error.hpp>

#include "c10d_backend_communicator.hpp"

namespace troupe::transport {
namespace {

/// memcpy that allows an empty copy: an empty tensor's data pointer may be null, which
/// memcpy must not get even for 0 bytes.
void copy_bytes(void* destination, const void* source, size_t bytes) {
  if (bytes > 0) std::memcpy(destination, source, bytes);
}

constexpr uint64_t kMagic = 0x74726f7570652d31;  // "troupe-1"
constexpr size_t kCacheLine = 64;
constexpr size_t kPage = 4096;

struct alignas(kCacheLine) Header {
  uint64_t magic;
  int64_t size;
  int64_t slot_bytes;
  std::atomic<uint32_t> wake;      // bumped at every arrival; sleepers wait on it (futex)
  std::atomic<uint32_t> sleepers;  // ranks asleep on `wake`: arrivals wake them only then
};

struct alignas(kCacheLine) RankControl {
  std::atomic<uint64_t> arrived;     // the last barrier generation this rank reached
  std::atomic<int64_t> collective;   // the collective it is in (1, 2, ...), for errors
  std::atomic<int64_t> pid;          // its process, to tell a dead peer from a slow one
};

static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free,
              "the barrier needs lock-free atomics: they live in memory several processes map");
static_assert(sizeof(Header) == kCacheLine && sizeof(RankControl) == kCacheLine);

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

size_t slots_offset(int size) { return round_up(sizeof(Header) + sizeof(RankControl) * static_cast<size_t>(size), kPage); }

Header& header_of(void* mapped) { return *static_cast<Header*>(mapped); }
RankControl& control_of(void* mapped, int rank) {
  return reinterpret_cast<RankControl*>(static_cast<char*>(mapped) + sizeof(Header))[rank];
}

long futex(std::atomic<uint32_t>* word, int op, uint32_t value, const timespec* timeout) {
  // Not FUTEX_PRIVATE: the word is shared between processes.
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, value, timeout, nullptr, 0);
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string store_string(c10d::Store& store, const std::string& key) {
  const auto bytes = store.get(key);
  return std::string(bytes.begin(), bytes.end());
}

/// Every rank's value of `key_prefix + rank`, after this rank set its own to `mine`.
std::vector<std::string> exchange(c10d::Store& store, const std::string& key_prefix, int rank, int size,
                                  const std::string& mine, std::chrono::milliseconds timeout) {
  store.set(key_prefix + std::to_string(rank), std::vector<uint8_t>(mine.begin(), mine.end()));
  std::vector<std::string> keys;
  for (int r = 0; r < size; ++r) keys.push_back(key_prefix + std::to_string(r));
  store.wait(keys, timeout);
  std::vector<std::string> values;
  for (const auto& key : keys) values.push_back(store_string(store, key));
  return values;
}

/// The key prefix of this join of `group`: joins of one group in one store are numbered,
/// so a group joined again (a restarted role) does not read the last join's keys.
std::string join_prefix(c10d::Store& store, const std::string& what, const std::string& group, int size) {
  const std::string base = "troupe/" + what + "/" + group + "/";
  const int64_t joins = store.add(base + "joins", 1);  // 1, 2, ...: size of them per join
  return base + std::to_string((joins - 1) / size) + "/";
}

/// "host A: ranks 0, 1; host B: rank 2" from every rank's host id.
std::string describe_hosts(const std::vector<std::string>& ids) {
  std::map<std::string, std::vector<int>> ranks_of;
  for (int r = 0; r < static_cast<int>(ids.size()); ++r) ranks_of[ids[static_cast<size_t>(r)]].push_back(r);
  std::string text;
  for (const auto& [id, ranks] : ranks_of) {
    text += (text.empty() ? "" : "; ") + std::string("host '") + id + "': rank" + (ranks.size() > 1 ? "s " : " ");
    for (size_t i = 0; i < ranks.size(); ++i) text += (i ? ", " : "") + std::to_string(ranks[i]);
  }
  return text;
}

/// What rank 0 publishes instead of a segment name when it cannot make the segment.
const std::string kFailedMark = "!failed";

/// A name for shm_open: the group (only [A-Za-z0-9_-], at most 64 of them) and a nonce.
std::string segment_name(const std::string& group) {
  std::string safe;
  for (char c : group.substr(0, 64)) safe += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  std::random_device random;
  std::ostringstream name;
  name << "/troupe-shm-" << safe << "-" << getpid() << "-" << std::hex << random() << random();
  return name.str();
}

/// Element range [begin, begin + length) of part `part` of `count` elements split in
/// `parts`, the parts' starts on cache lines.
std::pair<int64_t, int64_t> part_of(int64_t count, int parts, int part, int64_t element_size) {
  const int64_t align = std::max<int64_t>(1, static_cast<int64_t>(kCacheLine) / element_size);
  const int64_t each = (count + parts - 1) / parts;
  const int64_t step = (each + align - 1) / align * align;
  const int64_t begin = std::min(count, step * part);
  return {begin, std::min(count, begin + step) - begin};
}

/// `bytes` into a CPU tensor of `type` without copying.
at::Tensor view_bytes(char* bytes, int64_t count, at::ScalarType type) {
  return at::from_blob(bytes, {count}, at::TensorOptions().dtype(type));
}

/// out = out (op) other, element-wise; out already holds the running reduction.
void accumulate(at::Tensor& out, const at::Tensor& other, ReduceOp op) {
  if (op == ReduceOp::kMax)
    at::maximum_out(out, out, other);
  else
    out.add_(other);
}

/// out = sources(0) (op) sources(1) (op) ... (op) sources(W - 1), in that order, then / W
/// for kAvg: `length` elements of `type` each. In runs of ATen's grain size, which ATen
/// keeps on this thread: its intra-op threads would spin afterwards on the cores the
/// other ranks need to arrive.
template <class Source>
void reduce_in_order(char* out, const Source& source, int world, int64_t length, at::ScalarType type,
                     int64_t element, ReduceOp op) {
  constexpr int64_t kRun = 32768;  // at::internal::GRAIN_SIZE
  for (int64_t begin = 0; begin < length; begin += kRun) {
    const int64_t n = std::min(kRun, length - begin);
    const int64_t at = begin * element;
    copy_bytes(out + at, source(0) + at, static_cast<size_t>(n * element));
    auto reduced = view_bytes(out + at, n, type);
    for (int r = 1; r < world; ++r) accumulate(reduced, view_bytes(const_cast<char*>(source(r)) + at, n, type), op);
    if (op == ReduceOp::kAvg) reduced.div_(world);
  }
}

/// `tensor` itself when contiguous on the CPU, else a contiguous CPU copy.
at::Tensor on_host(const at::Tensor& tensor) {
  if (tensor.is_cpu() && tensor.is_contiguous()) return tensor;
  return tensor.to(at::kCPU).contiguous();
}

}  // namespace

std::string this_host_id() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) throw Error("transport: gethostname failed");
  return std::string(name) + " " + read_first_line("/proc/sys/kernel/random/boot_id");
}

bool ranks_share_host(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, const std::string& group,
                      std::chrono::milliseconds timeout) {
  check_rank("host check", group, rank, size);
  try {
    const auto prefix = join_prefix(*store, "hosts", group, size);
    const auto ids = exchange(*store, prefix, rank, size, this_host_id(), timeout);
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return id == ids[0]; });
  } catch (const Error&) {
    throw;
  } catch (const std::exception& error) {
    throw Error(describe_group("host check", group, rank, size) + ": the ranks did not all publish their host: " +
                error.what());
  }
}

SharedMemoryCommunicator::SharedMemoryCommunicator(c10::intrusive_ptr<c10d::Store> store, int rank, int size,
                                                   const std::string& group, std::chrono::milliseconds timeout,
                                                   int64_t slot_bytes)
    : rank_(rank), size_(size), group_(group), timeout_(timeout), slot_bytes_(slot_bytes) {
  if (!store) throw Error("transport: shm group '" + group + "' needs a store");
  check_rank("shm", group, rank, size);
  const auto described = describe_group("shm", group, rank, size);
  if (slot_bytes < static_cast<int64_t>(kPage) || slot_bytes % static_cast<int64_t>(kCacheLine) != 0)
    throw Error(described + ": a slot of " + std::to_string(slot_bytes) +
                " bytes; it needs at least 4096 and a multiple of 64");
  mapped_bytes_ = slots_offset(size) + static_cast<size_t>(slot_bytes) * static_cast<size_t>(size);
  try {
    const auto prefix = join_prefix(*store, "shm", group, size);
    const auto ids = exchange(*store, prefix + "host/", rank, size, this_host_id(), timeout);
    if (!std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return id == ids[0]; }))
      throw Error(described + ": shared-memory collectives need every rank on one machine, but " + describe_hosts(ids) +
                  " (use gloo collectives across machines)");

    int fd = -1;
    if (rank == 0) {
      segment_name_ = segment_name(group);
      // The other ranks wait for the segment's name: on failure, tell them why there is none.
      auto refuse = [&](const std::string& why) {
        store->set(prefix + "segment", std::vector<uint8_t>(kFailedMark.begin(), kFailedMark.end()));
        store->set(prefix + "failed", std::vector<uint8_t>(why.begin(), why.end()));
        throw Error(why);
      };
      fd = shm_open(segment_name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
      if (fd < 0) refuse(described + ": shm_open(" + segment_name_ + ") failed: " + std::strerror(errno));
      // Reserve every page now: a /dev/shm too small for the segment (a container's 64 MiB
      // default) then fails here with a message, not with SIGBUS at the first collective.
      int error = ftruncate(fd, static_cast<off_t>(mapped_bytes_)) != 0 ? errno : 0;
      if (error == 0) error = posix_fallocate(fd, 0, static_cast<off_t>(mapped_bytes_));
      if (error != 0) {
        close(fd);
        shm_unlink(segment_name_.c_str());
        refuse(described + ": cannot reserve " + std::to_string(mapped_bytes_) + " bytes of shared memory for " +
               segment_name_ + " (is /dev/shm large enough? use gloo collectives otherwise): " + std::strerror(error));
      }
    } else {
      store->wait({prefix + "segment"}, timeout);
      segment_name_ = store_string(*store, prefix + "segment");
      if (segment_name_ == kFailedMark) {
        segment_name_.clear();
        throw Error(described + ": rank 0 could not make the segment: " + store_string(*store, prefix + "failed"));
      }
      fd = shm_open(segment_name_.c_str(), O_RDWR, 0600);
      if (fd < 0) throw Error(described + ": shm_open(" + segment_name_ + ") failed: " + std::strerror(errno));
      struct stat status {};
      if (fstat(fd, &status) != 0 || static_cast<size_t>(status.st_size) != mapped_bytes_) {
        close(fd);
        throw Error(described + ": segment " + segment_name_ + " has " + std::to_string(status.st_size) +
                    " bytes, this rank expects " + std::to_string(mapped_bytes_) + " (slot sizes differ between ranks?)");
      }
    }
    mapped_ = mmap(nullptr, mapped_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int map_error = errno;
    close(fd);
    if (mapped_ == MAP_FAILED) {
      mapped_ = nullptr;
      if (rank == 0) shm_unlink(segment_name_.c_str());
      throw Error(described + ": mmap of " + segment_name_ + " failed: " + std::strerror(map_error));
    }
    auto& header = header_of(mapped_);
    if (rank == 0) {
      // ftruncate zero-filled the segment: every counter starts at 0.
      header.size = size;
      header.slot_bytes = slot_bytes;
      header.magic = kMagic;
      control_of(mapped_, 0).pid.store(getpid());
      store->set(prefix + "segment", std::vector<uint8_t>(segment_name_.begin(), segment_name_.end()));
      std::vector<std::string> mapped_keys;
      for (int r = 1; r < size; ++r) mapped_keys.push_back(prefix + "mapped/" + std::to_string(r));
      if (!mapped_keys.empty()) store->wait(mapped_keys, timeout);
      shm_unlink(segment_name_.c_str());  // every rank holds a mapping: the memory lives as long as they do
      unlinked_ = true;
    } else {
      if (header.magic != kMagic || header.size != size || header.slot_bytes != slot_bytes)
        throw Error(described + ": segment " + segment_name_ + " was made for " + std::to_string(header.size) +
                    " ranks with slots of " + std::to_string(header.slot_bytes) + " bytes");
      control_of(mapped_, rank).pid.store(getpid());
      store->set(prefix + "mapped/" + std::to_string(rank), std::vector<uint8_t>{1});
      unlinked_ = true;  // rank 0's to unlink
    }
  } catch (const std::exception& error) {
    if (mapped_) munmap(mapped_, mapped_bytes_);
    mapped_ = nullptr;
    if (rank == 0 && !segment_name_.empty() && !unlinked_) shm_unlink(segment_name_.c_str());
    if (dynamic_cast<const Error*>(&error)) throw;
    throw Error(described + ": rendezvous failed: " + error.what());
  }
}

SharedMemoryCommunicator::~SharedMemoryCommunicator() {
  if (mapped_) munmap(mapped_, mapped_bytes_);
  if (rank_ == 0 && !unlinked_ && !segment_name_.empty()) shm_unlink(segment_name_.c_str());
}

char* SharedMemoryCommunicator::slot(int rank) const {
  return static_cast<char*>(mapped_) + slots_offset(size_) + static_cast<size_t>(slot_bytes_) * static_cast<size_t>(rank);
}

std::string SharedMemoryCommunicator::where(const std::string& op) const {
  return "transport: shm " + op + " in group '" + group_ + "' (rank " + std::to_string(rank_) + " of " +
         std::to_string(size_) + ")";
}

void SharedMemoryCommunicator::begin(const std::string& what) {
  if (!broken_.empty()) throw Error(where(what) + ": this group failed earlier and is unusable: " + broken_);
  what_ = what;
  control_of(mapped_, rank_).collective.store(++collectives_, std::memory_order_relaxed);
}

void SharedMemoryCommunicator::arrive_and_wait() {
  if (size_ == 1) return;
  auto& header = header_of(mapped_);
  const uint64_t generation = ++generation_;
  control_of(mapped_, rank_).arrived.store(generation);
  header.wake.fetch_add(1);
  if (header.sleepers.load() > 0) futex(&header.wake, FUTEX_WAKE, INT_MAX, nullptr);

  const auto everyone_arrived = [&] {
    for (int r = 0; r < size_; ++r)
      if (control_of(mapped_, r).arrived.load() < generation) return false;
    return true;
  };
  // Spin briefly (a peer a few microseconds behind), then yield the core (ranks may
  // outnumber cores), then sleep on the futex until an arrival wakes us.
  for (int spin = 0; spin < 256; ++spin) {
    if (everyone_arrived()) return;
    cpu_relax();
  }
  const auto start = std::chrono::steady_clock::now();
  auto next_liveness_check = start + std::chrono::milliseconds(200);
  while (!everyone_arrived()) {
    const auto now = std::chrono::steady_clock::now();
    if (now - start < std::chrono::microseconds(500)) {
      sched_yield();
      continue;
    }
    if (now - start > timeout_) fail_waiting(generation, std::chrono::duration_cast<std::chrono::milliseconds>(now - start));
    if (now > next_liveness_check) {
      next_liveness_check = now + std::chrono::milliseconds(200);
      for (int r = 0; r < size_; ++r) {
        const auto pid = control_of(mapped_, r).pid.load();
        if (control_of(mapped_, r).arrived.load() < generation && pid != getpid() && kill(static_cast<pid_t>(pid), 0) != 0 &&
            errno == ESRCH)
          fail_waiting(generation, std::chrono::duration_cast<std::chrono::milliseconds>(now - start));
      }
    }
    header.sleepers.fetch_add(1);
    const uint32_t seen = header.wake.load();
    if (!everyone_arrived()) {
      const timespec nap{0, 2'000'000};  // 2 ms: the deadline and peers' liveness are checked between naps
      futex(&header.wake, FUTEX_WAIT, seen, &nap);
    }
    header.sleepers.fetch_sub(1);
  }
}

void SharedMemoryCommunicator::fail_waiting(uint64_t generation, std::chrono::milliseconds waited) {
  std::string absent;
  for (int r = 0; r < size_; ++r) {
    const auto& control = control_of(mapped_, r);
    if (control.arrived.load() >= generation) continue;
    const auto pid = control.pid.load();
    const bool dead = pid != getpid() && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
    absent += (absent.empty() ? "" : ", ") + std::to_string(r) +
              (dead ? " (its process " + std::to_string(pid) + " has exited)"
                    : " (last at collective " + std::to_string(control.collective.load()) + ")");
  }
  broken_ = where(what_) + " (collective " + std::to_string(collectives_) + "): waited " +
            std::to_string(waited.count()) + " ms for the other ranks; ranks that did not arrive: " + absent;
  throw Error(broken_);
}

void SharedMemoryCommunicator::check_average(const at::Tensor& tensor, ReduceOp op, const std::string& what) const {
  if (op == ReduceOp::kAvg && !at::isFloatingType(tensor.scalar_type()))
    throw Error(where(what) + ": avg needs a floating dtype, got " + std::string(c10::toString(tensor.scalar_type())));
}

void SharedMemoryCommunicator::check_root(int root, const std::string& what) const {
  if (root < 0 || root >= size_) throw Error(where(what) + ": root " + std::to_string(root) + " out of range");
}

void SharedMemoryCommunicator::reduce_pieces(at::Tensor& dense, ReduceOp op, int root) {
  const auto type = dense.scalar_type();
  const int64_t element = dense.element_size();
  const int64_t total = dense.numel();
  const int64_t piece = slot_bytes_ / element;
  auto* data = static_cast<char*>(dense.data_ptr());
  for (int64_t offset = 0; offset < total; offset += piece) {
    const int64_t count = std::min(piece, total - offset);  // elements in this piece
    char* mine = data + offset * element;
    copy_bytes(slot(rank_), mine, static_cast<size_t>(count * element));
    arrive_and_wait();
    // My part of the piece, reduced over ranks 0, 1, ... in order into my own tensor.
    const auto [begin, length] = part_of(count, size_, rank_, element);
    if (length > 0) {
      reduce_in_order(mine + begin * element, [&](int r) { return slot(r) + begin * element; }, size_, length, type,
                      element, op);
      copy_bytes(slot(rank_) + begin * element, mine + begin * element, static_cast<size_t>(length * element));
    }
    arrive_and_wait();
    if (root < 0 || root == rank_)
      for (int r = 0; r < size_; ++r) {
        if (r == rank_) continue;
        const auto [b, l] = part_of(count, size_, r, element);
        copy_bytes(mine + b * element, slot(r) + b * element, static_cast<size_t>(l * element));
      }
    arrive_and_wait();  // slots free for the next piece
  }
}

void SharedMemoryCommunicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  check_average(tensor, op, "all-reduce");
  begin("all-reduce");
  auto dense = on_host(tensor);
  reduce_pieces(dense, op, -1);
  if (!dense.is_same(tensor)) tensor.copy_(dense.view(tensor.sizes()));
}

void SharedMemoryCommunicator::reduce(at::Tensor& tensor, ReduceOp op, int root) {
  check_root(root, "reduce");
  check_average(tensor, op, "reduce");
  begin("reduce");
  auto dense = on_host(tensor);
  reduce_pieces(dense, op, root);
  if (!dense.is_same(tensor)) tensor.copy_(dense.view(tensor.sizes()));
}

at::Tensor SharedMemoryCommunicator::all_gather(const at::Tensor& input) {
  std::vector<int64_t> shape{size_};
  for (auto s : input.sizes()) shape.push_back(s);
  auto output = at::empty(shape, input.options().device(at::kCPU));  // (W, *S)
  all_gather_into(input, output);
  return output.to(input.device());
}

void SharedMemoryCommunicator::all_gather_into(const at::Tensor& input, at::Tensor& output) {
  const int64_t total = input.numel();
  if (output.numel() != total * size_ || output.scalar_type() != input.scalar_type())
    throw Error(where("all-gather") + ": into " + std::to_string(output.numel()) + " " +
                c10::toString(output.scalar_type()) + " elements of " + std::to_string(total) + " " +
                c10::toString(input.scalar_type()) + " from each rank");
  begin("all-gather");
  const auto dense = on_host(input);
  const bool direct = output.is_cpu() && output.is_contiguous();
  auto target = direct ? output : at::empty({output.numel()}, dense.options());  // (W * n)
  const int64_t element = dense.element_size();
  const int64_t piece = slot_bytes_ / element;
  const auto* data = static_cast<const char*>(dense.data_ptr());
  auto* out = static_cast<char*>(target.data_ptr());
  for (int64_t offset = 0; offset < total; offset += piece) {
    const auto bytes = static_cast<size_t>(std::min(piece, total - offset) * element);
    copy_bytes(slot(rank_), data + offset * element, bytes);
    arrive_and_wait();
    for (int r = 0; r < size_; ++r)
      copy_bytes(out + (r * total + offset) * element, r == rank_ ? data + offset * element : slot(r), bytes);
    arrive_and_wait();
  }
  if (!direct) output.copy_(target.view(output.sizes()));
}

at::Tensor SharedMemoryCommunicator::reduce_scatter(const at::Tensor& input, ReduceOp op) {
  if (input.dim() < 1 || input.size(0) != size_)
    throw Error(where("reduce-scatter") + ": input needs a leading dimension of " + std::to_string(size_) + ", got " +
                c10::str(input.sizes()));
  check_average(input, op, "reduce-scatter");
  begin("reduce-scatter");
  const auto dense = on_host(input);  // (W, *S)
  auto output = at::empty(input.sizes().slice(1), dense.options());  // (*S)
  const auto type = dense.scalar_type();
  const int64_t element = dense.element_size();
  const int64_t row = output.numel();
  // Each piece puts W rows' pieces in the slot, each starting on a cache line.
  const int64_t align = std::max<int64_t>(1, static_cast<int64_t>(kCacheLine) / element);
  const int64_t piece = std::max<int64_t>(1, slot_bytes_ / element / size_ / align * align);
  const auto* data = static_cast<const char*>(dense.data_ptr());
  auto* out = static_cast<char*>(output.data_ptr());
  for (int64_t offset = 0; offset < row; offset += piece) {
    const int64_t count = std::min(piece, row - offset);
    for (int d = 0; d < size_; ++d)
      copy_bytes(slot(rank_) + d * piece * element, data + (d * row + offset) * element,
                  static_cast<size_t>(count * element));
    arrive_and_wait();
    reduce_in_order(out + offset * element, [&](int r) { return slot(r) + rank_ * piece * element; }, size_, count, type,
                    element, op);
    arrive_and_wait();
  }
  return output.to(input.device());
}

at::Tensor SharedMemoryCommunicator::all_to_all(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                                                const std::vector<int64_t>& receive_counts) {
  int64_t total = 0;
  for (auto n : receive_counts) total += n;
  auto output = at::empty({total}, input.options().device(at::kCPU));  // (sum of receive_counts)
  all_to_all_into(input, send_counts, output, receive_counts);
  return output.to(input.device());
}

void SharedMemoryCommunicator::all_to_all_into(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                                               at::Tensor& output, const std::vector<int64_t>& receive_counts) {
  check_all_to_all(input, send_counts, receive_counts, size_, where("all-to-all"));
  int64_t total = 0;
  for (auto n : receive_counts) total += n;
  if (output.numel() != total || output.scalar_type() != input.scalar_type())
    throw Error(where("all-to-all") + ": into " + std::to_string(output.numel()) + " " +
                c10::toString(output.scalar_type()) + " elements for " + std::to_string(total) + " " +
                c10::toString(input.scalar_type()) + " ones received");
  const auto dense = on_host(input);
  const bool direct = output.is_cpu() && output.is_contiguous();
  auto target = direct ? output : at::empty({total}, dense.options());  // (sum of receive_counts)
  const auto W = static_cast<size_t>(size_);
  const int64_t element = dense.element_size();
  std::vector<int64_t> send_offset(W, 0), receive_offset(W, 0);
  for (size_t r = 1; r < W; ++r) {
    send_offset[r] = send_offset[r - 1] + send_counts[r - 1];
    receive_offset[r] = receive_offset[r - 1] + receive_counts[r - 1];
  }
  const auto* data = static_cast<const char*>(dense.data_ptr());
  auto* out = static_cast<char*>(target.data_ptr());
  AllToAllStreams streams;
  streams.dtype = dense.scalar_type();
  streams.send_counts = send_counts;
  streams.receive_counts = receive_counts;
  streams.pack = [&](int d, int64_t offset, int64_t count, void* to) {
    copy_bytes(to, data + (send_offset[static_cast<size_t>(d)] + offset) * element, static_cast<size_t>(count * element));
  };
  streams.unpack = [&](int s, int64_t offset, int64_t count, const void* from) {
    copy_bytes(out + (receive_offset[static_cast<size_t>(s)] + offset) * element, from,
               static_cast<size_t>(count * element));
  };
  all_to_all_streams(streams);
  if (!direct) output.copy_(target.view(output.sizes()));
}

void SharedMemoryCommunicator::all_to_all_streams(const AllToAllStreams& streams) {
  const auto& send_counts = streams.send_counts;
  const auto& receive_counts = streams.receive_counts;
  if (static_cast<int>(send_counts.size()) != size_ || static_cast<int>(receive_counts.size()) != size_)
    throw Error(where("all-to-all") + ": needs " + std::to_string(size_) + " send and receive counts, got " +
                std::to_string(send_counts.size()) + " and " + std::to_string(receive_counts.size()));
  begin("all-to-all");
  const auto W = static_cast<size_t>(size_);
  // Everyone's counts: sends[s][d] is what s sends d, receives[d][s] what d expects from s.
  std::vector<int64_t> sends(W * W), receives(W * W);
  if (size_ > 1) {
    auto* counts = reinterpret_cast<int64_t*>(slot(rank_));
    std::copy(send_counts.begin(), send_counts.end(), counts);
    std::copy(receive_counts.begin(), receive_counts.end(), counts + W);
    arrive_and_wait();
    for (size_t r = 0; r < W; ++r) {
      const auto* theirs = reinterpret_cast<const int64_t*>(slot(static_cast<int>(r)));
      std::copy(theirs, theirs + W, sends.begin() + static_cast<std::ptrdiff_t>(r * W));
      std::copy(theirs + W, theirs + 2 * W, receives.begin() + static_cast<std::ptrdiff_t>(r * W));
    }
    arrive_and_wait();
  } else {
    sends[0] = send_counts[0];
    receives[0] = receive_counts[0];
  }
  // Every rank sees the same matrix, so a mismatch throws on every rank alike.
  for (size_t s = 0; s < W; ++s)
    for (size_t d = 0; d < W; ++d)
      if (sends[s * W + d] != receives[d * W + s])
        throw Error(where("all-to-all") + ": rank " + std::to_string(s) + " sends " + std::to_string(sends[s * W + d]) +
                    " elements to rank " + std::to_string(d) + ", which expects " + std::to_string(receives[d * W + s]));

  const int64_t element = static_cast<int64_t>(c10::elementSize(streams.dtype));
  const auto me = static_cast<size_t>(rank_);
  // Each sender's slot holds W boxes of `box` elements, box d for rank d. Nobody reads
  // box `me` of this rank's slot: this rank's part for itself passes through it.
  const int64_t align = std::max<int64_t>(1, static_cast<int64_t>(kCacheLine) / element);
  const int64_t box = std::max<int64_t>(1, slot_bytes_ / element / size_ / align * align);
  const auto in_box = [&](int64_t count, int64_t offset) { return std::clamp<int64_t>(count - offset, 0, box); };
  auto* own_box = slot(rank_) + static_cast<int64_t>(me) * box * element;
  for (int64_t offset = 0; offset < send_counts[me]; offset += box) {
    const int64_t n = in_box(send_counts[me], offset);
    streams.pack(rank_, offset, n, own_box);
    streams.unpack(rank_, offset, n, own_box);
  }
  int64_t largest = 0;
  for (size_t s = 0; s < W; ++s)
    for (size_t d = 0; d < W; ++d)
      if (s != d) largest = std::max(largest, sends[s * W + d]);
  for (int64_t offset = 0; offset < largest; offset += box) {
    for (size_t d = 0; d < W; ++d) {
      const int64_t n = in_box(send_counts[d], offset);
      if (d != me && n > 0) streams.pack(static_cast<int>(d), offset, n, slot(rank_) + static_cast<int64_t>(d) * box * element);
    }
    arrive_and_wait();
    for (size_t s = 0; s < W; ++s) {
      const int64_t n = in_box(receive_counts[s], offset);
      if (s != me && n > 0)
        streams.unpack(static_cast<int>(s), offset, n, slot(static_cast<int>(s)) + static_cast<int64_t>(me) * box * element);
    }
    arrive_and_wait();
  }
}

void SharedMemoryCommunicator::broadcast(at::Tensor& tensor, int root) {
  check_root(root, "broadcast");
  begin("broadcast");
  auto dense = on_host(tensor);
  const int64_t element = dense.element_size();
  const int64_t total = dense.numel();
  // Only the root writes: every slot is its buffer, one contiguous region.
  const int64_t piece = slot_bytes_ * size_ / element;
  auto* data = static_cast<char*>(dense.data_ptr());
  for (int64_t offset = 0; offset < total; offset += piece) {
    const auto bytes = static_cast<size_t>(std::min(piece, total - offset) * element);
    if (rank_ == root) copy_bytes(slot(0), data + offset * element, bytes);
    arrive_and_wait();
    if (rank_ != root) copy_bytes(data + offset * element, slot(0), bytes);
    arrive_and_wait();
  }
  if (!dense.is_same(tensor)) tensor.copy_(dense.view(tensor.sizes()));
}

void SharedMemoryCommunicator::barrier() {
  begin("barrier");
  arrive_and_wait();
}

}  // namespace troupe::transport
