// The heartbeat datagram, as mcu/src/wire/heartbeat-wire.ts defines it (the format's reference;
// test/unit/native-heartbeat.test.ts checks this codec against it byte for byte):
//   magic u32 | kind u8 | epoch u32 | seq u32 | sentAt f64 | HMAC-SHA256(first 21 bytes)[0..16]
// big endian. Decoding checks in the same order as the TypeScript one, so both give the same
// reason for the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hmac_sha256.h"

namespace tkt {

constexpr uint32_t kHeartbeatMagic = 0x48425431;  // "HBT1"
constexpr size_t kHeartbeatBodyBytes = 21;
constexpr size_t kHeartbeatMacBytes = 16;
constexpr size_t kHeartbeatBytes = kHeartbeatBodyBytes + kHeartbeatMacBytes;
constexpr uint8_t kHeartbeatBeat = 1;
constexpr uint8_t kHeartbeatSubscribe = 2;

struct HeartbeatDatagram {
  uint8_t kind = 0;
  uint32_t epoch = 0;
  uint32_t seq = 0;
  // Sender's wall clock, epoch ms.
  double sentAt = 0;
};

// Why a datagram was refused: the TypeScript reasons (heartbeat-wire.ts), by number.
enum class HeartbeatDecodeError : uint8_t { kNone = 0, kLength = 1, kMagic = 2, kMac = 3, kKind = 4 };

void EncodeHeartbeat(const HeartbeatDatagram& datagram, const HmacSha256Key& key, uint8_t out[kHeartbeatBytes]);

// Never trusts the bytes. On kKind, `out->kind` holds the unknown code (for the reason).
HeartbeatDecodeError DecodeHeartbeat(const uint8_t* bytes, size_t length, const HmacSha256Key& key,
                                     HeartbeatDatagram* out);

}  // namespace tkt
