// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for the heartbeat threads.
//
// Why not OpenSSL (which Node links): its HMAC allocates a context and, in OpenSSL 3, looks the
// algorithm up in a provider store under a lock that the main thread's node:crypto takes too. A
// heartbeat thread must take no lock and allocate nothing while it beats. The key's inner and
// outer pads are hashed once, at start (HmacSha256Key); each MAC then costs two compressions of
// a 64-byte block, on the stack.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tkt {

class Sha256 {
 public:
  static constexpr size_t kBlockBytes = 64;
  static constexpr size_t kDigestBytes = 32;

  Sha256();
  void Update(const uint8_t* data, size_t length);
  void Final(uint8_t out[kDigestBytes]);

 private:
  void Compress(const uint8_t block[kBlockBytes]);

  uint32_t state_[8];
  uint8_t buffer_[kBlockBytes];
  size_t buffered_ = 0;
  uint64_t totalBytes_ = 0;
};

// An HMAC-SHA256 key with its pads already absorbed: Mac() is allocation- and lock-free.
class HmacSha256Key {
 public:
  HmacSha256Key(const uint8_t* key, size_t length);
  void Mac(const uint8_t* message, size_t length, uint8_t out[Sha256::kDigestBytes]) const;

 private:
  Sha256 inner_;
  Sha256 outer_;
};

}  // namespace tkt
