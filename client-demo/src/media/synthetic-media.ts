/**
 * A synthetic camera and microphone: a steady tone and a coloured tile with the
 * participant's name. Chaos tests give each participant its own tone and colour, so
 * what a page hears and sees proves the mix is right. Also handy for a demo on a
 * machine without devices (`?tone=440&tile=%23e53935`).
 */
export interface SyntheticMedia {
  stream: MediaStream;
  stop(): void;
}

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
  canvas.width = opts.width ?? 320;
  canvas.height = opts.height ?? 240;
  const ctx = canvas.getContext('2d')!;
  let frame = 0;
  // Repaint on a timer: a canvas capture only emits frames when the canvas changes.
  const paint = (): void => {
    ctx.fillStyle = opts.tileColor;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = 'rgba(255,255,255,0.85)';
    ctx.font = '20px sans-serif';
    ctx.fillText(opts.label, 10, 28);
    // A small moving bar along the bottom edge keeps frames changing; the centre stays one colour.
    ctx.fillRect((frame * 8) % canvas.width, canvas.height - 12, 40, 8);
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
