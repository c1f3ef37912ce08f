/**
 * Whether connection-level takeover can run in the lab here: root, iproute2 and nftables (the
 * lab itself) and the native addon (capture, TCP_REPAIR, SO_MARK). One answer for the lab
 * tests and benchmarks, which skip (or refuse) with it.
 */
import { nativeAddonAvailable } from '../../native/src/index.ts';
import { labUnsupportedReason } from './topology.ts';

/** Why takeover cannot run in the lab here, or null when it can. */
export async function takeoverLabUnsupportedReason(): Promise<string | null> {
  return (await labUnsupportedReason()) ?? (nativeAddonAvailable() ? null : 'native addon not built (bash scripts/build-native.sh): capture and TCP_REPAIR need it');
}
