#include <troupe/transport/in_process_channel.hpp>

#include <troupe/common/error.hpp>

namespace troupe::transport {

void InProcessChannel::send(const TensorBatch& batch) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(batch);  // copies handles, not storage
  }
  ready_.notify_one();
}

TensorBatch InProcessChannel::receive() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!ready_.wait_for(lock, options_.timeout, [this] { return !queue_.empty(); })) {
    throw Error("transport: in-process channel: no batch arrived within " +
                std::to_string(options_.timeout.count()) + " ms");
  }
  auto batch = std::move(queue_.front());
  queue_.pop_front();
  lock.unlock();
  if (options_.device.is_cpu()) return batch;
  TensorBatch moved;
  for (const auto& [name, tensor] : batch) moved.insert(name, tensor.to(options_.device));
  return moved;
}

void InProcessChannel::receive_into(TensorBatch& destination) {
  auto batch = receive();
  if (batch.size() != destination.size()) {
    throw Error("transport: in-process channel: " + std::to_string(batch.size()) +
                " tensors arrived but the destination holds " + std::to_string(destination.size()));
  }
  for (const auto& [name, tensor] : batch) {
    auto target = destination.get(name);
    if (target.scalar_type() != tensor.scalar_type() || target.sizes() != tensor.sizes()) {
      throw Error("transport: in-process channel: tensor '" + name + "' arrives as " +
                  std::string(c10::toString(tensor.scalar_type())) + " " + c10::str(tensor.sizes()) +
                  " but the destination is " + std::string(c10::toString(target.scalar_type())) + " " +
                  c10::str(target.sizes()));
    }
    target.copy_(tensor);
  }
}

std::size_t InProcessChannel::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

}  // namespace troupe::transport
