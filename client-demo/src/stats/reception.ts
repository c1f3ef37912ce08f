/** What the inbound RTP statistics of a peer connection say about its reception. */
export interface Reception {
  /** When the report was made (epoch ms, the clock of `lastPacketAt`). */
  at: number;
  /** When the latest RTP packet arrived on any inbound stream (epoch ms), null before the first. */
  lastPacketAt: number | null;
  packets: number;
  /** Audio packets alone (20 ms each): how long audio has been arriving. */
  audioPackets: number;
  /** When the latest audio packet arrived (epoch ms), null before the first. */
  lastAudioPacketAt: number | null;
}

/**
 * Reception of `pc` from its inbound-rtp statistics: counted at the network, not at playout
 * (jitter-buffer drain and concealment would hide a dead path for hundreds of ms). Chromium
 * caches a report for about 50 ms, so the silence is judged from the report's own time and the
 * last packet time it holds, never from when it was read.
 */
export async function reception(pc: RTCPeerConnection): Promise<Reception> {
  const result: Reception = { at: performance.timeOrigin + performance.now(), lastPacketAt: null, packets: 0, audioPackets: 0, lastAudioPacketAt: null };
  if (pc.connectionState === 'closed') return result;
  const stats = await pc.getStats();
  let reportAt: number | null = null;
  stats.forEach((s: { type: string; kind?: string; timestamp: number; packetsReceived?: number; lastPacketReceivedTimestamp?: number }) => {
    if (s.type !== 'inbound-rtp') return;
    reportAt = Math.max(reportAt ?? 0, s.timestamp);
    result.packets += s.packetsReceived ?? 0;
    if (s.lastPacketReceivedTimestamp !== undefined) result.lastPacketAt = Math.max(result.lastPacketAt ?? 0, s.lastPacketReceivedTimestamp);
    if (s.kind !== 'audio') return;
    result.audioPackets += s.packetsReceived ?? 0;
    if (s.lastPacketReceivedTimestamp !== undefined) result.lastAudioPacketAt = Math.max(result.lastAudioPacketAt ?? 0, s.lastPacketReceivedTimestamp);
  });
  if (reportAt !== null) result.at = reportAt;
  return result;
}

/** Chromium's own freeze counters of each inbound video stream of `pc`: stats id -> [freezeCount, totalFreezesDuration s]. */
export async function videoFreezes(pc: RTCPeerConnection): Promise<Record<string, [number, number]>> {
  const freezes: Record<string, [number, number]> = {};
  (await pc.getStats()).forEach((s: { id: string; type: string; kind?: string; freezeCount?: number; totalFreezesDuration?: number }) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') freezes[s.id] = [s.freezeCount ?? 0, s.totalFreezesDuration ?? 0];
  });
  return freezes;
}
