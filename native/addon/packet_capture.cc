// Passive capture of one TCP port's segments on one interface: AF_PACKET raw
// socket, promiscuous membership, a hand-assembled classic BPF filter, and a
// libuv poll handle so frames reach JavaScript in batches without busy-waiting.
// Frames are handed over raw; native/src/tcp-segment.ts parses them.
#include <arpa/inet.h>
#include <linux/filter.h>
#include <net/if_arp.h>
#include <linux/if_ether.h>
#include <netpacket/packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"

namespace tkt {

namespace {

// Large enough for a GSO/GRO super-frame on loopback or veth (64 KiB plus headers).
constexpr size_t kFrameBuffer = 256 * 1024;
// Frames read per poll callback at most, so a flood cannot starve the loop.
constexpr int kMaxBatch = 4096;
// Socket errors in a row, with no frame between them, before the capture gives up.
constexpr int kMaxErrorStreak = 1000;

// struct tpacket_stats of <linux/if_packet.h> (which clashes with glibc's headers).
struct PacketStats {
  unsigned int tp_packets;
  unsigned int tp_drops;
};

// "ip and tcp and port P" for Ethernet framing, IPv4 only, first fragments
// only (later fragments have no TCP header), no VLAN.
std::vector<sock_filter> BuildFilter(uint16_t port) {
  return {
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),                  // 0: A = ethertype
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 10),    // 1: IPv4? else 12
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),                  // 2: A = IP protocol
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 0, 8),  // 3: TCP? else 12
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 20),                  // 4: A = flags | fragment offset
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 6, 0),      // 5: offset != 0 -> 12
      BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),                 // 6: X = IP header length
      BPF_STMT(BPF_LD | BPF_H | BPF_IND, 14),                  // 7: A = source port
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 2, 0),         // 8: match -> 11
      BPF_STMT(BPF_LD | BPF_H | BPF_IND, 16),                  // 9: A = destination port
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),         // 10: match -> 11 else 12
      BPF_STMT(BPF_RET | BPF_K, 0x40000),                      // 11: accept the whole frame
      BPF_STMT(BPF_RET | BPF_K, 0),                            // 12: drop
  };
}

class PacketCapture : public Napi::ObjectWrap<PacketCapture> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativePacketCapture",
                       {
                           InstanceMethod("close", &PacketCapture::Close),
                           InstanceMethod("drain", &PacketCapture::Drain),
                           InstanceMethod("stats", &PacketCapture::Stats),
                           InstanceMethod("ref", &PacketCapture::RefHandle),
                           InstanceMethod("unref", &PacketCapture::UnrefHandle),
                       });
  }

  // new NativePacketCapture(ifname, port, { promiscuous, includeOutgoing, receiveBufferBytes }, onBatch)
  explicit PacketCapture(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PacketCapture>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsObject() ||
        !info[3].IsFunction()) {
      ThrowType(env, "NativePacketCapture(ifname: string, port: number, options: object, onBatch: function)");
    }
    const std::string ifname = info[0].As<Napi::String>().Utf8Value();
    const double portD = info[1].As<Napi::Number>().DoubleValue();
    if (!(portD >= 1 && portD <= 65535)) ThrowType(env, "port must be in [1, 65535]");
    const uint16_t port = static_cast<uint16_t>(portD);
    const Napi::Object opts = info[2].As<Napi::Object>();
    const bool promiscuous = BoolProp(env, opts, "promiscuous", true);
    const bool includeOutgoing = BoolProp(env, opts, "includeOutgoing", false);
    const uint32_t rcvbuf = OptionalU32Prop(env, opts, "receiveBufferBytes", 8 * 1024 * 1024, 1u << 30);

    const unsigned ifindex = if_nametoindex(ifname.c_str());
    if (ifindex == 0) ThrowSyscall(env, "if_nametoindex(" + ifname + ")", errno);

    // Protocol 0: the socket receives nothing until bind(), so no unfiltered
    // frame can slip in before the filter is attached.
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) ThrowSyscall(env, "socket(AF_PACKET)", errno);
    try {
      Setup(env, ifname, ifindex, port, promiscuous, includeOutgoing, rcvbuf);
    } catch (...) {
      close(fd_);
      fd_ = -1;
      throw;
    }
    buffer_.resize(kFrameBuffer);
    callback_ = Napi::Persistent(info[3].As<Napi::Function>());
    asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "tcp_takeover.PacketCapture");
    env_ = env;

    poll_ = new uv_poll_t;
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
      close(fd_);
      fd_ = -1;
      delete poll_;
      poll_ = nullptr;
      ThrowType(env, "napi_get_uv_event_loop failed");
    }
    int rc = uv_poll_init(loop, poll_, fd_);
    if (rc == 0) {
      poll_->data = this;
      rc = uv_poll_start(poll_, UV_READABLE, &PacketCapture::OnPoll);
      if (rc != 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(poll_), &PacketCapture::OnHandleClosed);
        poll_ = nullptr;
      }
    } else {
      delete poll_;
      poll_ = nullptr;
    }
    if (rc != 0) {
      close(fd_);
      fd_ = -1;
      ThrowSyscall(env, "uv_poll_start", -rc);
    }
    napi_add_env_cleanup_hook(env, &PacketCapture::OnEnvCleanup, this);
    Ref();  // stay alive while polling, even if JS drops its reference
  }

  ~PacketCapture() override { Shutdown(false); }

 private:
  void Setup(Napi::Env env, const std::string& ifname, unsigned ifindex, uint16_t port, bool promiscuous,
             bool includeOutgoing, uint32_t rcvbuf) {
    // Only Ethernet framing (or loopback, which carries an Ethernet header).
    struct ifreq ifr {};
    std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    if (ioctl(fd_, SIOCGIFHWADDR, &ifr) != 0) ThrowSyscall(env, "SIOCGIFHWADDR(" + ifname + ")", errno);
    if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER && ifr.ifr_hwaddr.sa_family != ARPHRD_LOOPBACK) {
      ThrowType(env, "interface " + ifname + " has no Ethernet framing (ARPHRD " +
                         std::to_string(ifr.ifr_hwaddr.sa_family) + "); only Ethernet and loopback are supported");
    }

    std::vector<sock_filter> code = BuildFilter(port);
    sock_fprog prog{};
    prog.len = static_cast<unsigned short>(code.size());
    prog.filter = code.data();
    if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) != 0) {
      ThrowSyscall(env, "SO_ATTACH_FILTER", errno);
    }
    if (!includeOutgoing) {
      // On loopback every packet is seen twice (outgoing, then incoming).
      int one = 1;
      if (setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) != 0) {
        ThrowSyscall(env, "PACKET_IGNORE_OUTGOING", errno);
      }
    }
    int size = static_cast<int>(rcvbuf);
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0 &&
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) != 0) {
      ThrowSyscall(env, "SO_RCVBUF", errno);
    }
    int one = 1;
    if (setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0) {
      ThrowSyscall(env, "SO_TIMESTAMPNS", errno);
    }
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(ifindex);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) ThrowSyscall(env, "bind(AF_PACKET)", errno);
    if (promiscuous) {
      packet_mreq mreq{};
      mreq.mr_ifindex = static_cast<int>(ifindex);
      mreq.mr_type = PACKET_MR_PROMISC;
      // Dropped by the kernel when the socket closes: no interface left promiscuous.
      if (setsockopt(fd_, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0) {
        ThrowSyscall(env, "PACKET_ADD_MEMBERSHIP", errno);
      }
    }
    // Reading PACKET_STATISTICS resets the kernel's counters: start from zero.
    PacketStats st{};
    socklen_t len = sizeof(st);
    getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len);
  }

  // Reads every frame available now (at most kMaxBatch). Returns an array of
  // { tsNs: bigint, pktType, frame: Buffer, length } (length: the frame's size
  // on the wire; > frame.length when truncated).
  Napi::Array ReadBatch(Napi::Env env, int* error) {
    Napi::Array out = Napi::Array::New(env);
    uint32_t n = 0;
    *error = 0;
    while (fd_ >= 0 && n < kMaxBatch) {
      sockaddr_ll from{};
      iovec iov{buffer_.data(), buffer_.size()};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
      msghdr msg{};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof(from);
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      const ssize_t len = recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_TRUNC);
      if (len < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) *error = errno;
        break;
      }
      uint64_t tsNs = 0;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          timespec ts{};
          std::memcpy(&ts, CMSG_DATA(c), sizeof(ts));
          tsNs = static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
        }
      }
      if (tsNs == 0) {
        timespec ts{};
        clock_gettime(CLOCK_REALTIME, &ts);
        tsNs = static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
      }
      const size_t captured = static_cast<size_t>(len) < buffer_.size() ? static_cast<size_t>(len) : buffer_.size();
      if (captured < static_cast<size_t>(len)) truncated_++;
      Napi::Object rec = Napi::Object::New(env);
      rec.Set("tsNs", Napi::BigInt::New(env, tsNs));
      rec.Set("pktType", Napi::Number::New(env, from.sll_pkttype));
      rec.Set("frame", Napi::Buffer<uint8_t>::Copy(env, buffer_.data(), captured));
      rec.Set("length", Napi::Number::New(env, static_cast<double>(len)));
      out.Set(n++, rec);
    }
    return out;
  }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<PacketCapture*>(handle->data);
    if (self == nullptr || self->fd_ < 0) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    Napi::Value err = env.Null();
    Napi::Value batch = env.Null();
    if (status < 0) {
      // libuv reports EPOLLERR as UV_EBADF and stops the handle. On a packet
      // socket that is usually a pending socket error (ENETDOWN when the
      // interface goes down; capturing resumes when it comes back up): read
      // and clear it, report it, and poll again. Give up only if the fd is
      // really bad or the error keeps coming without any frame in between.
      int soerr = 0;
      socklen_t len = sizeof(soerr);
      const bool fdOk = getsockopt(self->fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0;
      const bool resume = fdOk && ++self->errorStreak_ <= kMaxErrorStreak &&
                          uv_poll_start(handle, UV_READABLE, &PacketCapture::OnPoll) == 0;
      const std::string cause = soerr != 0 ? std::string(strerrorname_np(soerr) ? strerrorname_np(soerr) : "error")
                                           : std::string(uv_err_name(status));
      Napi::Error e = Napi::Error::New(
          env, std::string("capture socket error: ") + cause + (resume ? " (capturing goes on)" : " (capture stopped)"));
      e.Set("step", Napi::String::New(env, "poll"));
      e.Set("errnoName", Napi::String::New(env, cause));
      e.Set("errno", Napi::Number::New(env, soerr));
      e.Set("stopped", Napi::Boolean::New(env, !resume));
      err = e.Value();
    } else {
      int error = 0;
      Napi::Array frames = self->ReadBatch(env, &error);
      if (error != 0) {
        try {
          ThrowSyscall(env, "recvmsg(AF_PACKET)", error);
        } catch (const Napi::Error& e) {
          err = e.Value();
        }
      }
      if (frames.Length() == 0 && error == 0) return;
      if (frames.Length() > 0) self->errorStreak_ = 0;
      batch = frames;
    }
    try {
      self->callback_.MakeCallback(self->Value(), {err, batch}, *self->asyncContext_);
    } catch (const Napi::Error& e) {
      // No JS frame to throw into: report it like any uncaught exception.
      napi_fatal_exception(env, e.Value());
    }
  }

  Napi::Value Drain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) return Napi::Array::New(env);
    int error = 0;
    Napi::Array frames = ReadBatch(env, &error);
    if (error != 0) ThrowSyscall(env, "recvmsg(AF_PACKET)", error);
    return frames;
  }

  void UpdateStats() {
    if (fd_ < 0) return;
    PacketStats st{};
    socklen_t len = sizeof(st);
    if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
      // The kernel's tp_packets already includes the drops.
      packets_ += st.tp_packets;
      drops_ += st.tp_drops;
    }
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    UpdateStats();
    Napi::Object out = Napi::Object::New(env);
    out.Set("packets", Napi::Number::New(env, static_cast<double>(packets_)));
    out.Set("drops", Napi::Number::New(env, static_cast<double>(drops_)));
    out.Set("truncated", Napi::Number::New(env, static_cast<double>(truncated_)));
    return out;
  }

  Napi::Value RefHandle(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value UnrefHandle(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    UpdateStats();
    Shutdown(true);
    return info.Env().Undefined();
  }

  // Stops polling and closes the socket; idempotent.
  void Shutdown(bool fromJs) {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), &PacketCapture::OnHandleClosed);
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
      if (env_ != nullptr) napi_remove_env_cleanup_hook(env_, &PacketCapture::OnEnvCleanup, this);
      if (fromJs) {
        callback_.Reset();
        Unref();
      }
    }
  }

  static void OnHandleClosed(uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); }

  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<PacketCapture*>(arg);
    self->env_ = nullptr;  // the hook is being run: do not remove it again
    self->Shutdown(false);
  }

  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  napi_env env_ = nullptr;
  std::vector<uint8_t> buffer_;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
  uint64_t packets_ = 0;
  uint64_t drops_ = 0;
  uint64_t truncated_ = 0;
  int errorStreak_ = 0;
};

}  // namespace

void InitPacketCapture(Napi::Env env, Napi::Object exports) {
  exports.Set("NativePacketCapture", PacketCapture::Define(env));
}

}  // namespace tkt
