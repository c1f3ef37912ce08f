// Entry point of the tcp_takeover addon (Linux only): TCP_REPAIR helpers and
// an AF_PACKET capture, thread scheduling, the native heartbeat threads. See native/src/index.ts for the typed API.
#include "common.h"
#include "heartbeat_thread.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tkt::InitTcpRepair(env, exports);
  tkt::InitPacketCapture(env, exports);
  tkt::InitThreadSched(env, exports);
  tkt::InitFailureDetector(env, exports);
  tkt::InitHeartbeatBeacon(env, exports);
  tkt::InitHeartbeatMonitor(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(tcp_takeover, Init)
