#include "heartbeat_wire.h"

#include <cstring>

namespace tkt {

namespace {

void PutU32(uint8_t* at, uint32_t v) {
  at[0] = static_cast<uint8_t>(v >> 24);
  at[1] = static_cast<uint8_t>(v >> 16);
  at[2] = static_cast<uint8_t>(v >> 8);
  at[3] = static_cast<uint8_t>(v);
}

uint32_t GetU32(const uint8_t* at) {
  return (uint32_t(at[0]) << 24) | (uint32_t(at[1]) << 16) | (uint32_t(at[2]) << 8) | uint32_t(at[3]);
}

}  // namespace

void EncodeHeartbeat(const HeartbeatDatagram& datagram, const HmacSha256Key& key, uint8_t out[kHeartbeatBytes]) {
  PutU32(out, kHeartbeatMagic);
  out[4] = datagram.kind;
  PutU32(out + 5, datagram.epoch);
  PutU32(out + 9, datagram.seq);
  uint64_t bits;
  std::memcpy(&bits, &datagram.sentAt, sizeof(bits));
  PutU32(out + 13, static_cast<uint32_t>(bits >> 32));
  PutU32(out + 17, static_cast<uint32_t>(bits));
  uint8_t mac[Sha256::kDigestBytes];
  key.Mac(out, kHeartbeatBodyBytes, mac);
  std::memcpy(out + kHeartbeatBodyBytes, mac, kHeartbeatMacBytes);
}

HeartbeatDecodeError DecodeHeartbeat(const uint8_t* bytes, size_t length, const HmacSha256Key& key,
                                     HeartbeatDatagram* out) {
  if (length != kHeartbeatBytes) return HeartbeatDecodeError::kLength;
  if (GetU32(bytes) != kHeartbeatMagic) return HeartbeatDecodeError::kMagic;
  uint8_t mac[Sha256::kDigestBytes];
  key.Mac(bytes, kHeartbeatBodyBytes, mac);
  // Constant time: a forger learns nothing from how long the comparison took.
  uint8_t diff = 0;
  for (size_t i = 0; i < kHeartbeatMacBytes; i++) diff |= static_cast<uint8_t>(mac[i] ^ bytes[kHeartbeatBodyBytes + i]);
  if (diff != 0) return HeartbeatDecodeError::kMac;
  out->kind = bytes[4];
  out->epoch = GetU32(bytes + 5);
  out->seq = GetU32(bytes + 9);
  const uint64_t bits = (uint64_t(GetU32(bytes + 13)) << 32) | GetU32(bytes + 17);
  std::memcpy(&out->sentAt, &bits, sizeof(bits));
  if (out->kind != kHeartbeatBeat && out->kind != kHeartbeatSubscribe) return HeartbeatDecodeError::kKind;
  return HeartbeatDecodeError::kNone;
}

}  // namespace tkt
