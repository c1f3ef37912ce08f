/**
 * A synthetic camera and microphone: a steady tone and a coloured tile with the
 * participant's name. Chaos tests give each participant its own tone and colour, so
 * what a page hears and sees proves the mix is right. Also handy for a demo on a
 * machine without devices (`?tone=440&tile=%23e53935`).
 *
 * The tone plan (`voiceToneHz`) and the tile's moving marker (`TILE_MARKER`) are shared with
 * the page's own meters (client-demo/src/stats) and the tests and benchmarks (scripts/probe/mix.ts):
 * one place says which participant sounds at which frequency and where its tile moves.
 */
export interface SyntheticMedia {
  stream: MediaStream;
  stop(): void;
}

/**
 * The participants' tones, by seat (join order of the test and benchmark calls). Chosen so that
 * no two are closer than 350 Hz and no harmonic (2f..6f) or intermodulation product (a±b, 2a±b,
 * 3a-b, 3a-2b, 2a-2b) of the others' tones comes within 110 Hz of a participant's own: codec
 * distortion of the others' mix must neither read as hearing oneself nor as a voice that is
 * silent (400/700/1100 failed: 1100 - 700 = 400; 440/620/1030 leaked: 1030 - 620 = 410).
 * test/unit/voice-tones.test.ts checks the plan (by these rules no fifth tone below 4 kHz fits).
 */
export const VOICE_TONES_HZ: readonly number[] = [560, 1340, 1790, 2570];

/** The tone of the participant in `seat` (0-based): one assignment for the tests, the benchmarks and the page's voice meter. */
export function voiceToneHz(seat: number): number {
  const hz = VOICE_TONES_HZ[seat];
  if (!Number.isInteger(seat) || hz === undefined) throw new RangeError(`no tone for seat ${seat}: the plan has ${VOICE_TONES_HZ.length} seats`);
  return hz;
}

/** Size of the synthetic tile (4:3, as the MCU's grid cells for 3 or 4 participants). */
export const TILE_SIZE = { width: 320, height: 240 } as const;

/**
 * The tile's moving marker, in pixels of a TILE_SIZE tile: a bar `width` wide and `height` high
 * at `y` along the bottom edge, advancing `step` per painted frame (15 fps). The page's tile
 * meter reads just this band of each grid cell.
 */
export const TILE_MARKER = { y: 228, height: 8, width: 40, step: 8 } as const;

export function createSyntheticMedia(opts: { toneHz: number; tileColor: string; label: string; width?: number; height?: number }): SyntheticMedia {
  const audio = new AudioContext({ sampleRate: 48000 });
  const oscillator = audio.createOscillator();
  oscillator.frequency.value = opts.toneHz;
  const gain = audio.createGain();
  gain.gain.value = 0.25;
  const destination = audio.createMediaStreamDestination();
  oscillator.connect(gain).connect(destination);
  oscillator.start();
  void audio.resume();

  const canvas = document.createElement('canvas');
  canvas.width = opts.width ?? TILE_SIZE.width;
  canvas.height = opts.height ?? TILE_SIZE.height;
  const ctx = canvas.getContext('2d')!;
  const scale = canvas.width / TILE_SIZE.width;
  const markerY = Math.round((canvas.height * TILE_MARKER.y) / TILE_SIZE.height);
  const markerH = Math.max(1, Math.round((canvas.height * TILE_MARKER.height) / TILE_SIZE.height));
  let frame = 0;
  // Repaint on a timer: a canvas capture only emits frames when the canvas changes.
  const paint = (): void => {
    ctx.fillStyle = opts.tileColor;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = 'rgba(255,255,255,0.85)';
    ctx.font = '20px sans-serif';
    ctx.fillText(opts.label, 10, 28);
    // The moving marker keeps frames changing and shows the tile is live; the centre stays one colour.
    ctx.fillRect((frame * TILE_MARKER.step * scale) % canvas.width, markerY, TILE_MARKER.width * scale, markerH);
    frame++;
  };
  paint();
  const timer = setInterval(paint, 1000 / 15);
  const video = canvas.captureStream(15);
  const stream = new MediaStream([...destination.stream.getAudioTracks(), ...video.getVideoTracks()]);
  return {
    stream,
    stop() {
      clearInterval(timer);
      oscillator.stop();
      for (const t of stream.getTracks()) t.stop();
      void audio.close();
    },
  };
}
