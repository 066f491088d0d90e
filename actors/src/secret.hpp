#pragma once
/// Shared-secret authentication between a controller and its node agents: SHA-256,
/// HMAC-SHA256 and nonces. The secret itself never goes on the wire, only HMACs of
/// fresh nonces.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <troupe/actors/messages.hpp>

namespace troupe::actors {

/// SHA-256 of `data` (FIPS 180-4).
std::array<uint8_t, 32> sha256(const uint8_t* data, size_t size);

/// HMAC-SHA256 of `message` under `key` (RFC 2104).
Bytes hmac_sha256(const std::string& key, const Bytes& message);

/// `size` bytes from the system's random device.
Bytes random_nonce(size_t size = 32);

/// The proof a party sends: HMAC(secret, who | agent_nonce | controller_nonce), where
/// `who` is "agent" or "controller" so one side's proof never passes as the other's.
Bytes secret_proof(const std::string& secret, const std::string& who, const Bytes& agent_nonce,
                   const Bytes& controller_nonce);

/// Compares without an early exit (no timing hint of how many bytes matched).
bool same_bytes(const Bytes& a, const Bytes& b);

/// Lower-case hex of `bytes` (tests, logs).
std::string to_hex(const Bytes& bytes);

}  // namespace troupe::actors
