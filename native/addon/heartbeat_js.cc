// The heartbeat threads' pure parts, for JavaScript: the FailureDetector on a clock the caller
// drives (NativeFailureDetector: the unit tests of its rules, mcu/src/detection/failure-detector.ts),
// the datagram codec (checked against mcu/src/wire/heartbeat-wire.ts), and a pipe for the kernel
// lease (the beacon thread writes its renewals into it, `nft -i` reads them).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common.h"
#include "failure_detector.h"
#include "heartbeat_thread.h"
#include "heartbeat_wire.h"

namespace tkt {

// The shape of DetectorOutput in failure-detector.ts (the host probe's `detail` is added there).
Napi::Object DetectorOutputToJs(Napi::Env env, const DetectorOutput& out) {
  Napi::Object o = Napi::Object::New(env);
  switch (out.type) {
    case DetectorOutputType::kFirstBeat:
      o.Set("type", "first-beat");
      o.Set("at", out.at);
      break;
    case DetectorOutputType::kSuspected:
      o.Set("type", "suspected");
      o.Set("cause", out.cause == SuspicionCause::kMissedBeats ? "missed-beats" : "channel-closed");
      o.Set("at", out.at);
      o.Set("silenceMs", out.hasSilence ? Napi::Number::New(env, out.silenceMs) : env.Null());
      break;
    case DetectorOutputType::kLateBeat:
      o.Set("type", "late-beat");
      o.Set("silenceMs", out.silenceMs);
      o.Set("at", out.at);
      break;
    case DetectorOutputType::kSelfPause:
      o.Set("type", "self-pause");
      o.Set("ms", out.silenceMs);
      o.Set("at", out.at);
      break;
    case DetectorOutputType::kProbePort:
      o.Set("type", "probe-port");
      break;
    case DetectorOutputType::kProbeHost:
      o.Set("type", "probe-host");
      o.Set("silentSince", out.silentSince);
      o.Set("timeoutMs", out.timeoutMs);
      break;
    case DetectorOutputType::kHostProbe:
      o.Set("type", "host-probe");
      o.Set("usable", out.usable);
      o.Set("ms", out.hasMs ? Napi::Number::New(env, out.ms) : env.Null());
      break;
    case DetectorOutputType::kDead: {
      o.Set("type", "dead");
      Napi::Object verdict = Napi::Object::New(env);
      const char* reason = out.verdict.reason == DeathReason::kHeartbeatTimeout ? "heartbeat-timeout"
                           : out.verdict.reason == DeathReason::kPortUnreachable ? "port-unreachable"
                                                                                 : "host-unreachable";
      verdict.Set("reason", reason);
      verdict.Set("lastHeartbeatAt", out.verdict.hasLastBeat ? Napi::Number::New(env, out.verdict.lastBeatAt) : env.Null());
      verdict.Set("detectedAt", out.verdict.detectedAt);
      o.Set("verdict", verdict);
      break;
    }
  }
  return o;
}

namespace {

Napi::Array OutputsToJs(Napi::Env env, const DetectorOutputs& outs) {
  Napi::Array array = Napi::Array::New(env, outs.count);
  for (int i = 0; i < outs.count; i++) array.Set(static_cast<uint32_t>(i), DetectorOutputToJs(env, outs.items[i]));
  return array;
}

double NowArg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsNumber()) ThrowType(info.Env(), "a time (epoch ms) must be a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

class NativeFailureDetector : public Napi::ObjectWrap<NativeFailureDetector> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeFailureDetector",
                       {
                           InstanceMethod("beat", &NativeFailureDetector::Beat),
                           InstanceMethod("tick", &NativeFailureDetector::Tick),
                           InstanceMethod("portUnreachable", &NativeFailureDetector::PortUnreachable),
                           InstanceMethod("hostProbed", &NativeFailureDetector::HostProbed),
                           InstanceMethod("hostProbeCalibrated", &NativeFailureDetector::HostProbeCalibrated),
                           InstanceMethod("channelClosed", &NativeFailureDetector::ChannelClosed),
                           InstanceAccessor("state", &NativeFailureDetector::State, nullptr),
                           InstanceAccessor("lastBeatAt", &NativeFailureDetector::LastBeatAt, nullptr),
                           InstanceAccessor("verdict", &NativeFailureDetector::Verdict, nullptr),
                           InstanceAccessor("timeoutMs", &NativeFailureDetector::TimeoutMs, nullptr),
                           InstanceAccessor("judgeEveryMs", &NativeFailureDetector::JudgeEveryMs, nullptr),
                           InstanceAccessor("selfPauseMs", &NativeFailureDetector::SelfPauseMs, nullptr),
                       });
  }

  // new NativeFailureDetector({ intervalMs, missedBeats, confirmMs, hostProbeTimeoutMs }, startedAt)
  explicit NativeFailureDetector(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<NativeFailureDetector>(info), judge_(DetectorSettings{}, 0) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject()) ThrowType(env, "NativeFailureDetector(settings: object, startedAt: number)");
    const Napi::Object s = info[0].As<Napi::Object>();
    DetectorSettings settings;
    settings.intervalMs = NumberProp(env, s, "intervalMs");
    settings.missedBeats = U32Prop(env, s, "missedBeats");
    settings.confirmMs = NumberProp(env, s, "confirmMs");
    Napi::Value probe = s.Get("hostProbeTimeoutMs");
    if (!probe.IsNumber()) ThrowType(env, "hostProbeTimeoutMs must be a number");
    settings.hostProbeTimeoutMs = probe.As<Napi::Number>().DoubleValue();
    judge_ = FailureDetector(settings, NowArg(info, 1));
  }

 private:
  Napi::Value Beat(const Napi::CallbackInfo& info) {
    DetectorOutputs outs;
    judge_.Beat(NowArg(info, 0), &outs);
    return OutputsToJs(info.Env(), outs);
  }
  Napi::Value Tick(const Napi::CallbackInfo& info) {
    DetectorOutputs outs;
    judge_.Tick(NowArg(info, 0), &outs);
    return OutputsToJs(info.Env(), outs);
  }
  Napi::Value PortUnreachable(const Napi::CallbackInfo& info) {
    DetectorOutputs outs;
    judge_.PortUnreachable(NowArg(info, 0), &outs);
    return OutputsToJs(info.Env(), outs);
  }
  // hostProbed(silentSince, answered, now)
  Napi::Value HostProbed(const Napi::CallbackInfo& info) {
    DetectorOutputs outs;
    const bool answered = info.Length() > 1 && info[1].ToBoolean().Value();
    judge_.HostProbed(NowArg(info, 0), answered, NowArg(info, 2), &outs);
    return OutputsToJs(info.Env(), outs);
  }
  // hostProbeCalibrated(ms | null)
  Napi::Value HostProbeCalibrated(const Napi::CallbackInfo& info) {
    DetectorOutputs outs;
    const bool hasMs = info.Length() > 0 && info[0].IsNumber();
    judge_.HostProbeCalibrated(hasMs, hasMs ? info[0].As<Napi::Number>().DoubleValue() : 0, &outs);
    return OutputsToJs(info.Env(), outs);
  }
  // channelClosed(deliberate, now)
  Napi::Value ChannelClosed(const Napi::CallbackInfo& info) {
    DetectorOutputs outs;
    const bool deliberate = info.Length() > 0 && info[0].ToBoolean().Value();
    judge_.ChannelClosed(deliberate, NowArg(info, 1), &outs);
    return OutputsToJs(info.Env(), outs);
  }
  Napi::Value State(const Napi::CallbackInfo& info) {
    static const char* const kNames[] = {"waiting", "alive", "suspected", "dead", "stopped"};
    return Napi::String::New(info.Env(), kNames[static_cast<int>(judge_.state())]);
  }
  Napi::Value LastBeatAt(const Napi::CallbackInfo& info) {
    return judge_.hasLastBeat() ? Napi::Number::New(info.Env(), judge_.lastBeatAt()) : info.Env().Null();
  }
  Napi::Value Verdict(const Napi::CallbackInfo& info) {
    if (!judge_.hasVerdict()) return info.Env().Null();
    DetectorOutput dead;
    dead.type = DetectorOutputType::kDead;
    dead.verdict = judge_.verdict();
    return DetectorOutputToJs(info.Env(), dead).Get("verdict");
  }
  Napi::Value TimeoutMs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), judge_.timeoutMs()); }
  Napi::Value JudgeEveryMs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), judge_.judgeEveryMs()); }
  Napi::Value SelfPauseMs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), judge_.selfPauseMs()); }

  FailureDetector judge_;
};

HmacSha256Key KeyArg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index) ThrowType(info.Env(), "secret missing");
  const std::string secret = SecretArg(info.Env(), info[index]);
  return HmacSha256Key(reinterpret_cast<const uint8_t*>(secret.data()), secret.size());
}

// encodeHeartbeat({ kind, epoch, seq, sentAt }, secret) -> Buffer (the beacon's and monitor's encoder).
Napi::Value EncodeHeartbeatJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject()) ThrowType(env, "encodeHeartbeat(datagram: object, secret)");
  const Napi::Object d = info[0].As<Napi::Object>();
  HeartbeatDatagram datagram;
  datagram.kind = static_cast<uint8_t>(U32Prop(env, d, "kind", 255));
  datagram.epoch = U32Prop(env, d, "epoch");
  datagram.seq = U32Prop(env, d, "seq");
  Napi::Value sentAt = d.Get("sentAt");
  if (!sentAt.IsNumber()) ThrowType(env, "sentAt must be a number");
  datagram.sentAt = sentAt.As<Napi::Number>().DoubleValue();
  uint8_t bytes[kHeartbeatBytes];
  EncodeHeartbeat(datagram, KeyArg(info, 1), bytes);
  return Napi::Buffer<uint8_t>::Copy(env, bytes, sizeof(bytes));
}

// decodeHeartbeat(bytes, secret) -> { ok: true, kind, epoch, seq, sentAt } | { ok: false, error, length, kind }
Napi::Value DecodeHeartbeatJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsBuffer()) ThrowType(env, "decodeHeartbeat(bytes: Buffer, secret)");
  Napi::Buffer<uint8_t> bytes = info[0].As<Napi::Buffer<uint8_t>>();
  HeartbeatDatagram datagram;
  const HeartbeatDecodeError error = DecodeHeartbeat(bytes.Data(), bytes.Length(), KeyArg(info, 1), &datagram);
  Napi::Object out = Napi::Object::New(env);
  out.Set("ok", error == HeartbeatDecodeError::kNone);
  if (error == HeartbeatDecodeError::kNone) {
    out.Set("kind", datagram.kind);
    out.Set("epoch", datagram.epoch);
    out.Set("seq", datagram.seq);
    out.Set("sentAt", datagram.sentAt);
  } else {
    static const char* const kNames[] = {"none", "length", "magic", "mac", "kind"};
    out.Set("error", kNames[static_cast<int>(error)]);
    out.Set("length", static_cast<double>(bytes.Length()));
    out.Set("kind", datagram.kind);
  }
  return out;
}

// createLeasePipe() -> { readFd, writeFd }: both close-on-exec, the write end non-blocking (a
// heartbeat thread never waits on it), the read end blocking (for the `nft -i` that reads it).
Napi::Value CreateLeasePipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) ThrowSyscall(env, "pipe2", errno);
  if (fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK) != 0) {
    const int err = errno;
    close(fds[0]);
    close(fds[1]);
    ThrowSyscall(env, "fcntl(O_NONBLOCK)", err);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("readFd", fds[0]);
  out.Set("writeFd", fds[1]);
  return out;
}

}  // namespace

void InitFailureDetector(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeFailureDetector", NativeFailureDetector::Define(env));
  exports.Set("encodeHeartbeat", Napi::Function::New(env, EncodeHeartbeatJs, "encodeHeartbeat"));
  exports.Set("decodeHeartbeat", Napi::Function::New(env, DecodeHeartbeatJs, "decodeHeartbeat"));
  exports.Set("createLeasePipe", Napi::Function::New(env, CreateLeasePipe, "createLeasePipe"));
}

}  // namespace tkt
