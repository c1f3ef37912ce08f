/** What a participant should hear and see in the mix: shared by the browser tests and the chaos benchmark. */
import { voiceToneHz } from '../../client-demo/src/media/synthetic-media.ts';
import { gridLayout } from '../../mcu/src/media/video-layout.ts';
import { colourDistance, hexToRgb, type ParticipantPage, type ParticipantSpec } from '../common/browser.ts';

// Tones from the one tone plan (voiceToneHz: far apart, no harmonic or intermodulation product
// of the others near any of them), by seat: the join order of the calls.
export const PARTICIPANTS: ParticipantSpec[] = [
  { name: 'Red', toneHz: voiceToneHz(0), tile: '#e53935' },
  { name: 'Green', toneHz: voiceToneHz(1), tile: '#43a047' },
  { name: 'Blue', toneHz: voiceToneHz(2), tile: '#1e88e5' },
];
export const TONES = PARTICIPANTS.map((p) => p.toneHz);
/**
 * Each tone arrives near -26 dBFS when it is in the mix. Own tone mixed in by mistake would
 * arrive just as loud; codec noise around the others' tones stays below about -62 dBFS.
 */
export const HEARD_DB = -45;
export const SILENT_DB = -55;
export const COLOUR_TOLERANCE = 70;

/** Centre of each cell of the composed grid, relative to the frame. */
export function cellCentres(count: number): Array<[number, number]> {
  return gridLayout(count, 640, 480).map((c) => [(c.x + c.width / 2) / 640, (c.y + c.height / 2) / 480]);
}

/** The tones a participant must hear in its mix: everyone's but its own. */
export function othersOf(spec: ParticipantSpec): number[] {
  return PARTICIPANTS.filter((p) => p.name !== spec.name).map((p) => p.toneHz);
}

/** Does the page hear exactly the expected tones? Returns a readable verdict for assertions. */
export async function hearing(page: ParticipantPage, expected: number[]): Promise<{ ok: boolean; levels: Record<string, number> }> {
  const levels = await page.toneLevels(TONES);
  const ok = TONES.every((f) => (expected.includes(f) ? levels[String(f)]! > HEARD_DB : levels[String(f)]! < SILENT_DB));
  return { ok, levels };
}

/** Does the grid show exactly these tiles, in this order? */
export async function seeing(page: ParticipantPage, tiles: string[]): Promise<{ ok: boolean; pixels: Array<[number, number, number]> }> {
  const pixels = await page.samplePixels(cellCentres(tiles.length));
  const ok = tiles.every((hex, i) => colourDistance(pixels[i]!, hexToRgb(hex)) < COLOUR_TOLERANCE);
  return { ok, pixels };
}

