#include "failure_detector.h"

#include <algorithm>
#include <cmath>

namespace tkt {

FailureDetector::FailureDetector(const DetectorSettings& settings, double startedAt)
    : settings_(settings),
      timeoutMs_(settings.intervalMs * settings.missedBeats),
      judgeEveryMs_(std::max(1.0, std::floor(settings.intervalMs / 2))),
      selfPauseMs_(std::max(3 * judgeEveryMs_, 15.0)),
      lastTickAt_(startedAt) {}

void FailureDetector::Beat(double now, DetectorOutputs* out) {
  if (Final()) return;
  if (!hasLastBeat_) {
    out->Add(DetectorOutputType::kFirstBeat).at = now;
  } else if (now - lastBeatAt_ > timeoutMs_) {
    DetectorOutput& late = out->Add(DetectorOutputType::kLateBeat);
    late.silenceMs = now - lastBeatAt_;
    late.at = now;
  }
  hasLastBeat_ = true;
  lastBeatAt_ = now;
  state_ = DetectorState::kAlive;
}

void FailureDetector::Tick(double now, DetectorOutputs* out) {
  const double pausedMs = now - lastTickAt_;
  lastTickAt_ = now;
  if (Final() || !hasLastBeat_) return;
  const double last = lastBeatAt_;
  // This thread itself did not run for a while: beats sent meanwhile may wait unread in the
  // socket, so the silence says nothing yet. Judge at the next tick, once they are read.
  if (pausedMs > selfPauseMs_) {
    DetectorOutput& pause = out->Add(DetectorOutputType::kSelfPause);
    pause.silenceMs = pausedMs;
    pause.at = now;
    return;
  }
  const double silentMs = now - last;
  if (silentMs <= timeoutMs_) {
    // A beat is late: ask at once. A dead process's host answers with port unreachable
    // within a millisecond, long before the missed-beats window is over.
    if (silentMs > settings_.intervalMs * 1.5 && !(hasEarlyProbeFor_ && earlyProbeFor_ == last)) {
      hasEarlyProbeFor_ = true;
      earlyProbeFor_ = last;
      out->Add(DetectorOutputType::kProbePort);
    }
    return;
  }
  // Missed beats are a suspicion; the verdict waits one more window for a beat that was sent
  // but delayed on a loaded host, while a probe answered by "port unreachable" ends it at once:
  // ask again at every tick meanwhile.
  if (state_ != DetectorState::kSuspected) {
    state_ = DetectorState::kSuspected;
    DetectorOutput& suspected = out->Add(DetectorOutputType::kSuspected);
    suspected.cause = SuspicionCause::kMissedBeats;
    suspected.at = now;
    suspected.hasSilence = true;
    suspected.silenceMs = silentMs;
  }
  if (silentMs > timeoutMs_ + settings_.confirmMs) {
    Die(DeathReason::kHeartbeatTimeout, now, out);
    return;
  }
  out->Add(DetectorOutputType::kProbePort);
  // Is the host itself still there? Its kernel answers within a millisecond.
  if (hostProbeUsable_ && !(hasHostProbeFor_ && hostProbeFor_ == last)) {
    hasHostProbeFor_ = true;
    hostProbeFor_ = last;
    DetectorOutput& probe = out->Add(DetectorOutputType::kProbeHost);
    probe.silentSince = last;
    probe.timeoutMs = settings_.hostProbeTimeoutMs;
  }
}

void FailureDetector::PortUnreachable(double now, DetectorOutputs* out) {
  if (Final() || (!hasLastBeat_ && !streamLost_)) return;
  Die(DeathReason::kPortUnreachable, now, out);
}

void FailureDetector::HostProbed(double silentSince, bool answered, double now, DetectorOutputs* out) {
  // A beat since then ended that silence: the answer is about a past one.
  if (Final() || answered || !hasLastBeat_ || lastBeatAt_ != silentSince) return;
  Die(DeathReason::kHostUnreachable, now, out);
}

void FailureDetector::HostProbeCalibrated(bool hasMs, double ms, DetectorOutputs* out) {
  // Its silence counts only if it answered in under half the probe timeout: a host that answers
  // slower, or a firewall that drops SYNs, would make every late beat a verdict.
  hostProbeUsable_ = hasMs && ms < settings_.hostProbeTimeoutMs / 2;
  DetectorOutput& result = out->Add(DetectorOutputType::kHostProbe);
  result.usable = hostProbeUsable_;
  result.hasMs = hasMs;
  result.ms = ms;
}

void FailureDetector::ChannelClosed(bool deliberate, double now, DetectorOutputs* out) {
  if (Final()) return;
  if (deliberate) {
    state_ = DetectorState::kStopped;
    return;
  }
  streamLost_ = true;
  state_ = DetectorState::kSuspected;
  DetectorOutput& suspected = out->Add(DetectorOutputType::kSuspected);
  suspected.cause = SuspicionCause::kChannelClosed;
  suspected.at = now;
  suspected.hasSilence = hasLastBeat_;
  suspected.silenceMs = hasLastBeat_ ? now - lastBeatAt_ : 0;
  out->Add(DetectorOutputType::kProbePort);
}

void FailureDetector::Die(DeathReason reason, double now, DetectorOutputs* out) {
  verdict_.reason = reason;
  verdict_.hasLastBeat = hasLastBeat_;
  verdict_.lastBeatAt = lastBeatAt_;
  verdict_.detectedAt = now;
  state_ = DetectorState::kDead;
  out->Add(DetectorOutputType::kDead).verdict = verdict_;
}

}  // namespace tkt
