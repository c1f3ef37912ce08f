// TCP_REPAIR primitives: read a live connection's sequence numbers and
// parameters, and rebuild an ESTABLISHED connection in a fresh socket.
// Order and traps: design notes, section 9.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"

namespace tkt {

namespace {

// Values from include/uapi/linux/tcp.h, in case the libc headers are older
// than the running kernel.
constexpr int kRepairOn = 1;
constexpr int kRepairOff = 0;
constexpr int kRepairOffNoWindowProbe = -1;
constexpr int kNoQueue = 0;
constexpr int kRecvQueue = 1;
constexpr int kSendQueue = 2;
constexpr uint32_t kOptMss = 2;
constexpr uint32_t kOptWindow = 3;
constexpr uint32_t kOptSackPerm = 4;
constexpr uint32_t kOptTimestamp = 8;
constexpr uint32_t kMaxWscale = 14;
constexpr uint32_t kMaxUserMss = 32767;  // MAX_TCP_WINDOW: the kernel's bound for TCP_MAXSEG

// The UAPI struct tcp_info up to tcpi_snd_wnd (kernel 5.4+), written out here
// because glibc's copy stops at tcpi_total_retrans and <linux/tcp.h> clashes
// with <netinet/tcp.h>. The kernel fills a prefix of it (returned length).
struct KernelTcpInfo {
  uint8_t state;
  uint8_t ca_state;
  uint8_t retransmits;
  uint8_t probes;
  uint8_t backoff;
  uint8_t options;
  uint8_t wscales;  // snd_wscale : 4 (low nibble), rcv_wscale : 4 (high nibble)
  uint8_t flags;
  uint32_t rto;
  uint32_t ato;
  uint32_t snd_mss;
  uint32_t rcv_mss;
  uint32_t unacked;
  uint32_t sacked;
  uint32_t lost;
  uint32_t retrans;
  uint32_t fackets;
  uint32_t last_data_sent;
  uint32_t last_ack_sent;
  uint32_t last_data_recv;
  uint32_t last_ack_recv;
  uint32_t pmtu;
  uint32_t rcv_ssthresh;
  uint32_t rtt;
  uint32_t rttvar;
  uint32_t snd_ssthresh;
  uint32_t snd_cwnd;
  uint32_t advmss;
  uint32_t reordering;
  uint32_t rcv_rtt;
  uint32_t rcv_space;
  uint32_t total_retrans;
  uint64_t pacing_rate;
  uint64_t max_pacing_rate;
  uint64_t bytes_acked;
  uint64_t bytes_received;
  uint32_t segs_out;
  uint32_t segs_in;
  uint32_t notsent_bytes;
  uint32_t min_rtt;
  uint32_t data_segs_in;
  uint32_t data_segs_out;
  uint64_t delivery_rate;
  uint64_t busy_time;
  uint64_t rwnd_limited;
  uint64_t sndbuf_limited;
  uint32_t delivered;
  uint32_t delivered_ce;
  uint64_t bytes_sent;
  uint64_t bytes_retrans;
  uint32_t dsack_dups;
  uint32_t reord_seen;
  uint32_t rcv_ooopack;
  uint32_t snd_wnd;
};

const char* TcpStateName(uint8_t state) {
  static const char* const names[] = {"UNKNOWN",   "ESTABLISHED", "SYN_SENT", "SYN_RECV",
                                      "FIN_WAIT1", "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
                                      "CLOSE_WAIT", "LAST_ACK",   "LISTEN",   "CLOSING",
                                      "NEW_SYN_RECV"};
  return state < sizeof(names) / sizeof(names[0]) ? names[state] : "UNKNOWN";
}

void SetInt(Napi::Env env, int fd, int level, int name, int value, const char* step) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) ThrowSyscall(env, step, errno);
}

int GetInt(Napi::Env env, int fd, int level, int name, const char* step) {
  int value = 0;
  socklen_t len = sizeof(value);
  if (getsockopt(fd, level, name, &value, &len) != 0) ThrowSyscall(env, step, errno);
  return value;
}

// Runs `body` with the socket in repair mode, then leaves repair mode with
// TCP_REPAIR_OFF_NO_WP (0 would make the kernel send a window probe).
template <typename Body>
void WithRepair(Napi::Env env, int fd, Body body) {
  SetInt(env, fd, SOL_TCP, TCP_REPAIR, kRepairOn, "TCP_REPAIR");
  try {
    body();
  } catch (...) {
    int off = kRepairOffNoWindowProbe;
    setsockopt(fd, SOL_TCP, TCP_REPAIR, &off, sizeof(off));
    throw;
  }
  SetInt(env, fd, SOL_TCP, TCP_REPAIR, kRepairOffNoWindowProbe, "TCP_REPAIR off");
}

uint32_t ReadQueueSeq(Napi::Env env, int fd, int queue, const char* step) {
  SetInt(env, fd, SOL_TCP, TCP_REPAIR_QUEUE, queue, step);
  uint32_t seq = 0;
  socklen_t len = sizeof(seq);
  if (getsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, &seq, &len) != 0) {
    ThrowSyscall(env, std::string("TCP_QUEUE_SEQ (") + step + ")", errno);
  }
  return seq;
}

Napi::Value ReadSequenceNumbers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0);
  uint32_t sendSeq = 0;
  uint32_t recvSeq = 0;
  int inq = 0;
  int outq = 0;
  WithRepair(env, fd, [&] {
    sendSeq = ReadQueueSeq(env, fd, kSendQueue, "TCP_REPAIR_QUEUE send");
    recvSeq = ReadQueueSeq(env, fd, kRecvQueue, "TCP_REPAIR_QUEUE recv");
    SetInt(env, fd, SOL_TCP, TCP_REPAIR_QUEUE, kNoQueue, "TCP_REPAIR_QUEUE none");
    if (ioctl(fd, SIOCINQ, &inq) != 0) ThrowSyscall(env, "SIOCINQ", errno);
    if (ioctl(fd, SIOCOUTQ, &outq) != 0) ThrowSyscall(env, "SIOCOUTQ", errno);
  });
  Napi::Object out = Napi::Object::New(env);
  out.Set("sendSeq", Napi::Number::New(env, sendSeq));
  out.Set("recvSeq", Napi::Number::New(env, recvSeq));
  out.Set("inq", Napi::Number::New(env, inq));
  out.Set("outq", Napi::Number::New(env, outq));
  return out;
}

// Appends to a live connection's receive queue the part of `bytes` (the client's stream from
// sequence number `startSeq`, as the standby's capture saw it) at and beyond the socket's next
// expected byte, through the repair mode's receive queue: for a hole no retransmission will
// fill (another host's kernel acknowledged those bytes). rcv_nxt is read and the bytes written
// under one repair session, so the slice matches where the kernel stands. Returns the number of
// bytes queued (0 when the socket already has them all).
Napi::Value FillReceiveQueue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0);
  if (info.Length() < 3 || !info[1].IsBuffer() || !info[2].IsNumber()) ThrowType(env, "fillReceiveQueue(fd, bytes: Buffer, startSeq: number)");
  const Napi::Buffer<uint8_t> bytes = info[1].As<Napi::Buffer<uint8_t>>();
  const double startSeqNumber = info[2].As<Napi::Number>().DoubleValue();
  if (!(startSeqNumber >= 0 && startSeqNumber <= 4294967295.0)) ThrowType(env, "startSeq must be a 32-bit unsigned integer");
  const uint32_t startSeq = static_cast<uint32_t>(startSeqNumber);
  size_t queued = 0;
  WithRepair(env, fd, [&] {
    const uint32_t recvSeq = ReadQueueSeq(env, fd, kRecvQueue, "TCP_REPAIR_QUEUE recv");
    const uint32_t offset = recvSeq - startSeq;  // modulo 2^32
    if (offset < bytes.Length()) {
      const uint8_t* from = bytes.Data() + offset;
      size_t left = bytes.Length() - offset;
      while (left > 0) {
        const ssize_t n = send(fd, from, left, 0);
        if (n < 0) {
          if (errno == EINTR) continue;
          ThrowSyscall(env, "send (repair receive queue)", errno);
        }
        from += n;
        left -= static_cast<size_t>(n);
        queued += static_cast<size_t>(n);
      }
    }
    SetInt(env, fd, SOL_TCP, TCP_REPAIR_QUEUE, kNoQueue, "TCP_REPAIR_QUEUE none");
  });
  return Napi::Number::New(env, static_cast<double>(queued));
}

Napi::Value ReadRepairWindow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0);
  struct tcp_repair_window window {};
  WithRepair(env, fd, [&] {
    socklen_t len = sizeof(window);
    if (getsockopt(fd, SOL_TCP, TCP_REPAIR_WINDOW, &window, &len) != 0) {
      ThrowSyscall(env, "TCP_REPAIR_WINDOW", errno);
    }
  });
  Napi::Object out = Napi::Object::New(env);
  out.Set("sndWl1", Napi::Number::New(env, window.snd_wl1));
  out.Set("sndWnd", Napi::Number::New(env, window.snd_wnd));
  out.Set("maxWindow", Napi::Number::New(env, window.max_window));
  out.Set("rcvWnd", Napi::Number::New(env, window.rcv_wnd));
  out.Set("rcvWup", Napi::Number::New(env, window.rcv_wup));
  return out;
}

Napi::Value TcpInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0);
  KernelTcpInfo ti{};
  socklen_t len = sizeof(ti);
  if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) != 0) ThrowSyscall(env, "TCP_INFO", errno);
  const int maxSeg = GetInt(env, fd, SOL_TCP, TCP_MAXSEG, "TCP_MAXSEG");

  Napi::Object out = Napi::Object::New(env);
  auto num = [&](const char* name, double v) { out.Set(name, Napi::Number::New(env, v)); };
  auto has = [&](size_t end) { return static_cast<size_t>(len) >= end; };
  num("state", ti.state);
  out.Set("stateName", Napi::String::New(env, TcpStateName(ti.state)));
  num("caState", ti.ca_state);
  num("retransmits", ti.retransmits);
  num("probes", ti.probes);
  num("backoff", ti.backoff);
  num("options", ti.options);
  out.Set("timestamps", Napi::Boolean::New(env, (ti.options & 1) != 0));
  out.Set("sack", Napi::Boolean::New(env, (ti.options & 2) != 0));
  out.Set("wscale", Napi::Boolean::New(env, (ti.options & 4) != 0));
  out.Set("ecn", Napi::Boolean::New(env, (ti.options & 8) != 0));
  out.Set("usecTimestamps", Napi::Boolean::New(env, (ti.options & 64) != 0));
  num("sndWscale", ti.wscales & 0x0f);
  num("rcvWscale", ti.wscales >> 4);
  num("rto", ti.rto);
  num("ato", ti.ato);
  num("sndMss", ti.snd_mss);
  num("rcvMss", ti.rcv_mss);
  num("unacked", ti.unacked);
  num("lost", ti.lost);
  num("retrans", ti.retrans);
  num("lastDataSent", ti.last_data_sent);
  num("lastDataRecv", ti.last_data_recv);
  num("lastAckRecv", ti.last_ack_recv);
  num("pmtu", ti.pmtu);
  num("rcvSsthresh", ti.rcv_ssthresh);
  num("rtt", ti.rtt);
  num("rttvar", ti.rttvar);
  num("sndSsthresh", ti.snd_ssthresh);
  num("sndCwnd", ti.snd_cwnd);
  num("advmss", ti.advmss);
  num("rcvSpace", ti.rcv_space);
  num("totalRetrans", ti.total_retrans);
  if (has(offsetof(KernelTcpInfo, bytes_received) + 8)) {
    num("bytesAcked", static_cast<double>(ti.bytes_acked));
    num("bytesReceived", static_cast<double>(ti.bytes_received));
  }
  if (has(offsetof(KernelTcpInfo, notsent_bytes) + 4)) num("notsentBytes", ti.notsent_bytes);
  if (has(offsetof(KernelTcpInfo, min_rtt) + 4)) num("minRtt", ti.min_rtt);
  if (has(offsetof(KernelTcpInfo, snd_wnd) + 4)) num("sndWnd", ti.snd_wnd);
  num("maxSeg", maxSeg);

  // TCP_TIMESTAMP reads the TSval the socket would put in its next segment:
  // the kernel clock (CLOCK_MONOTONIC in ms, or us when bit 0 is set) plus the
  // connection's random offset. The offset is derived against our own read
  // of CLOCK_MONOTONIC, so it is exact to about one unit.
  uint32_t tsVal = 0;
  socklen_t tsLen = sizeof(tsVal);
  if (getsockopt(fd, SOL_TCP, TCP_TIMESTAMP, &tsVal, &tsLen) != 0) ThrowSyscall(env, "TCP_TIMESTAMP", errno);
  struct timespec now {};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const bool usec = (tsVal & 1) != 0;
  const uint64_t clockNow = usec ? static_cast<uint64_t>(now.tv_sec) * 1000000ULL + now.tv_nsec / 1000
                                 : static_cast<uint64_t>(now.tv_sec) * 1000ULL + now.tv_nsec / 1000000;
  num("tsVal", tsVal);
  num("tsOffset", static_cast<uint32_t>(tsVal - static_cast<uint32_t>(clockNow)));
  out.Set("tsClockUsec", Napi::Boolean::New(env, usec));
  return out;
}

Napi::Value SetMark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0);
  if (info.Length() < 2 || !info[1].IsNumber()) ThrowType(env, "mark must be a number");
  const double d = info[1].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0)) ThrowType(env, "mark must be an unsigned 32-bit integer");
  const uint32_t mark = static_cast<uint32_t>(d);
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) ThrowSyscall(env, "SO_MARK", errno);
  return env.Undefined();
}

Napi::Value GetMark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0);
  uint32_t mark = 0;
  socklen_t len = sizeof(mark);
  if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len) != 0) ThrowSyscall(env, "SO_MARK", errno);
  return Napi::Number::New(env, mark);
}

Napi::Value SetRepair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0);
  if (info.Length() < 2 || !info[1].IsNumber()) ThrowType(env, "mode must be 1, 0 or -1");
  const int mode = info[1].As<Napi::Number>().Int32Value();
  if (mode != kRepairOn && mode != kRepairOff && mode != kRepairOffNoWindowProbe) {
    ThrowType(env, "mode must be 1, 0 or -1");
  }
  SetInt(env, fd, SOL_TCP, TCP_REPAIR, mode, "TCP_REPAIR");
  return env.Undefined();
}

// Parses "a.b.c.d" or an IPv6 literal into a sockaddr; returns its length.
socklen_t ParseAddress(Napi::Env env, const std::string& text, uint32_t port, const char* what,
                       sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    return sizeof(sockaddr_in);
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    return sizeof(sockaddr_in6);
  }
  ThrowType(env, std::string(what) + " is not an IPv4 or IPv6 address: \"" + text + "\"");
}

std::vector<uint8_t> OptionalBytes(Napi::Env env, const Napi::Object& obj, const char* name) {
  Napi::Value v = obj.Get(name);
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(env, std::string(name) + " must be a Buffer or Uint8Array");
  }
  Napi::Uint8Array bytes = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(bytes.Data(), bytes.Data() + bytes.ByteLength());
}

// Grows a socket buffer (SO_SNDBUFFORCE / SO_RCVBUFFORCE, root) so `need`
// bytes fit at once; a repair-mode write cannot wait for room.
void EnsureBuffer(Napi::Env env, int fd, int name, int forceName, size_t need, const char* step) {
  int current = GetInt(env, fd, SOL_SOCKET, name, step);
  // The kernel doubles what is set and reports the doubled value.
  const size_t wanted = need * 2 + 65536;
  if (static_cast<size_t>(current) >= wanted) return;
  const int value = wanted > 0x3fffffff ? 0x3fffffff : static_cast<int>(wanted);
  if (setsockopt(fd, SOL_SOCKET, forceName, &value, sizeof(value)) != 0 &&
      setsockopt(fd, SOL_SOCKET, name, &value, sizeof(value)) != 0) {
    ThrowSyscall(env, step, errno);
  }
}

void WriteQueue(Napi::Env env, int fd, int queue, const std::vector<uint8_t>& data, const char* what) {
  const bool recv = queue == kRecvQueue;
  EnsureBuffer(env, fd, recv ? SO_RCVBUF : SO_SNDBUF, recv ? SO_RCVBUFFORCE : SO_SNDBUFFORCE, data.size(),
               recv ? "SO_RCVBUF (recv queue)" : "SO_SNDBUF (send queue)");
  SetInt(env, fd, SOL_TCP, TCP_REPAIR_QUEUE, queue, recv ? "TCP_REPAIR_QUEUE recv" : "TCP_REPAIR_QUEUE send");
  size_t offset = 0;
  while (offset < data.size()) {
    const ssize_t n = send(fd, data.data() + offset, data.size() - offset, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowSyscall(env, std::string("send (") + what + ", " + std::to_string(offset) + "/" +
                            std::to_string(data.size()) + " bytes written)",
                   errno);
    }
    offset += static_cast<size_t>(n);
  }
  SetInt(env, fd, SOL_TCP, TCP_REPAIR_QUEUE, kNoQueue, "TCP_REPAIR_QUEUE none");
}

// Closes the half-built socket if a step throws.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

Napi::Value RepairConnection(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) ThrowType(env, "state must be an object");
  const Napi::Object state = info[0].As<Napi::Object>();

  // Validate everything before the first syscall.
  const uint32_t localPort = U32Prop(env, state, "localPort", 65535);
  const uint32_t remotePort = U32Prop(env, state, "remotePort", 65535);
  sockaddr_storage local{};
  sockaddr_storage remote{};
  const socklen_t localLen = ParseAddress(env, StringProp(env, state, "localAddress"), localPort, "localAddress", &local);
  const socklen_t remoteLen =
      ParseAddress(env, StringProp(env, state, "remoteAddress"), remotePort, "remoteAddress", &remote);
  if (local.ss_family != remote.ss_family) ThrowType(env, "localAddress and remoteAddress are of different families");
  const uint32_t sendSeq = U32Prop(env, state, "sendSeq");
  const uint32_t recvSeq = U32Prop(env, state, "recvSeq");
  const uint32_t mss = U32Prop(env, state, "mss", 65535);
  const Napi::Value sndWsV = state.Get("sndWscale");
  const Napi::Value rcvWsV = state.Get("rcvWscale");
  const bool hasWscale = !(sndWsV.IsUndefined() || sndWsV.IsNull());
  if (hasWscale == (rcvWsV.IsUndefined() || rcvWsV.IsNull())) {
    ThrowType(env, "sndWscale and rcvWscale must be given together (or both omitted when window scaling was not negotiated)");
  }
  const uint32_t sndWscale = hasWscale ? U32Prop(env, state, "sndWscale", kMaxWscale) : 0;
  const uint32_t rcvWscale = hasWscale ? U32Prop(env, state, "rcvWscale", kMaxWscale) : 0;
  const bool sack = BoolProp(env, state, "sackPermitted", false);
  const bool timestamps = BoolProp(env, state, "timestamps", false);
  uint32_t tsVal = 0;
  if (timestamps) {
    tsVal = U32Prop(env, state, "tsVal");
    // Round up to even: on kernels >= 6.7 bit 0 selects the microsecond clock.
    tsVal = (tsVal + 1u) & ~1u;
  }
  if (!state.Get("window").IsObject()) ThrowType(env, "window must be an object");
  const Napi::Object w = state.Get("window").As<Napi::Object>();
  struct tcp_repair_window window {};
  window.snd_wl1 = U32Prop(env, w, "sndWl1");
  window.snd_wnd = U32Prop(env, w, "sndWnd");
  window.max_window = U32Prop(env, w, "maxWindow");
  window.rcv_wnd = U32Prop(env, w, "rcvWnd");
  window.rcv_wup = U32Prop(env, w, "rcvWup");
  const bool hasMark = !(state.Get("mark").IsUndefined() || state.Get("mark").IsNull());
  const uint32_t mark = hasMark ? U32Prop(env, state, "mark") : 0;
  const bool noDelay = BoolProp(env, state, "noDelay", true);
  const bool v6 = local.ss_family == AF_INET6;
  const std::vector<uint8_t> sendQueue = OptionalBytes(env, state, "sendQueue");
  const std::vector<uint8_t> recvQueue = OptionalBytes(env, state, "recvQueue");

  FdGuard guard{socket(local.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP)};
  const int fd = guard.fd;
  if (fd < 0) ThrowSyscall(env, "socket", errno);
  // Repair mode also sets the kernel's "force reuse" flag, which lets the bind
  // below sit beside a listener on the same address and port.
  SetInt(env, fd, SOL_TCP, TCP_REPAIR, kRepairOn, "TCP_REPAIR");
  if (v6) {
    SetInt(env, fd, SOL_IPV6, IPV6_FREEBIND, 1, "IPV6_FREEBIND");
  } else {
    SetInt(env, fd, SOL_IP, IP_FREEBIND, 1, "IP_FREEBIND");
  }
  // No SO_REUSEADDR here: it would overwrite the force-reuse flag that
  // TCP_REPAIR set, and bind() would then fail with EADDRINUSE beside a listener.
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), localLen) != 0) ThrowSyscall(env, "bind", errno);
  SetInt(env, fd, SOL_TCP, TCP_REPAIR_QUEUE, kSendQueue, "TCP_REPAIR_QUEUE send");
  if (setsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, &sendSeq, sizeof(sendSeq)) != 0) {
    ThrowSyscall(env, "TCP_QUEUE_SEQ send", errno);
  }
  SetInt(env, fd, SOL_TCP, TCP_REPAIR_QUEUE, kRecvQueue, "TCP_REPAIR_QUEUE recv");
  if (setsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, &recvSeq, sizeof(recvSeq)) != 0) {
    ThrowSyscall(env, "TCP_QUEUE_SEQ recv", errno);
  }
  SetInt(env, fd, SOL_TCP, TCP_REPAIR_QUEUE, kNoQueue, "TCP_REPAIR_QUEUE none");
  // connect() sizes segments from this; TCP_REPAIR_OPTIONS does not recompute it.
  // The kernel refuses values above MAX_TCP_WINDOW (32767) with EINVAL, which
  // a loopback peer's MSS (65495) exceeds: clamp, the MSS option keeps the
  // real value.
  SetInt(env, fd, SOL_TCP, TCP_MAXSEG, static_cast<int>(mss < kMaxUserMss ? mss : kMaxUserMss), "TCP_MAXSEG");
  // In repair mode connect() sends no SYN and goes straight to ESTABLISHED,
  // even on a non-blocking socket.
  if (connect(fd, reinterpret_cast<sockaddr*>(&remote), remoteLen) != 0) ThrowSyscall(env, "connect", errno);

  std::vector<tcp_repair_opt> opts;
  opts.push_back({kOptMss, mss});
  if (hasWscale) opts.push_back({kOptWindow, sndWscale | (rcvWscale << 16)});
  if (sack) opts.push_back({kOptSackPerm, 0});
  if (timestamps) opts.push_back({kOptTimestamp, 0});
  if (setsockopt(fd, SOL_TCP, TCP_REPAIR_OPTIONS, opts.data(),
                 static_cast<socklen_t>(opts.size() * sizeof(tcp_repair_opt))) != 0) {
    ThrowSyscall(env, "TCP_REPAIR_OPTIONS", errno);
  }
  // Optional queue contents, written in repair mode (the kernel sends nothing):
  // recvQueue as bytes received from the peer (rcv_nxt advances, so it goes
  // before TCP_REPAIR_WINDOW, whose rcv_wup may not pass rcv_nxt), sendQueue
  // as bytes already sent and in flight (snd_nxt advances: the peer's ACKs up
  // to it are accepted; unacknowledged ones are retransmitted on the timer).
  if (!recvQueue.empty()) WriteQueue(env, fd, kRecvQueue, recvQueue, "recv queue");
  if (!sendQueue.empty()) WriteQueue(env, fd, kSendQueue, sendQueue, "send queue");
  if (setsockopt(fd, SOL_TCP, TCP_REPAIR_WINDOW, &window, sizeof(window)) != 0) {
    ThrowSyscall(env, "TCP_REPAIR_WINDOW", errno);
  }
  if (timestamps) {
    if (setsockopt(fd, SOL_TCP, TCP_TIMESTAMP, &tsVal, sizeof(tsVal)) != 0) ThrowSyscall(env, "TCP_TIMESTAMP", errno);
  }
  if (hasMark) {
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) ThrowSyscall(env, "SO_MARK", errno);
  }
  SetInt(env, fd, SOL_TCP, TCP_REPAIR, kRepairOffNoWindowProbe, "TCP_REPAIR off");
  // Leaving repair mode cleared the reuse flag; without it the next bind of
  // this address and port (the next takeover, a listener) gets EADDRINUSE.
  SetInt(env, fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  if (noDelay) SetInt(env, fd, SOL_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
  return Napi::Number::New(env, guard.release());
}

// Closes an fd the caller owns (a rebuilt socket that will not be adopted).
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0);
  if (close(fd) != 0) ThrowSyscall(env, "close", errno);
  return env.Undefined();
}

}  // namespace

void InitTcpRepair(Napi::Env env, Napi::Object exports) {
  exports.Set("readSequenceNumbers", Napi::Function::New(env, ReadSequenceNumbers, "readSequenceNumbers"));
  exports.Set("fillReceiveQueue", Napi::Function::New(env, FillReceiveQueue, "fillReceiveQueue"));
  exports.Set("readRepairWindow", Napi::Function::New(env, ReadRepairWindow, "readRepairWindow"));
  exports.Set("tcpInfo", Napi::Function::New(env, TcpInfo, "tcpInfo"));
  exports.Set("setMark", Napi::Function::New(env, SetMark, "setMark"));
  exports.Set("getMark", Napi::Function::New(env, GetMark, "getMark"));
  exports.Set("setRepair", Napi::Function::New(env, SetRepair, "setRepair"));
  exports.Set("repairConnection", Napi::Function::New(env, RepairConnection, "repairConnection"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
}

}  // namespace tkt
