import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as core from '../../mcu/src/core/errors.ts';
import { ERROR_CODES, McuError, RoomFullError, toWireError } from '../../mcu/src/core/errors.ts';
import * as conference from '../../mcu/src/conference/session-state.ts';
import * as takeover from '../../mcu/src/takeover/errors.ts';
import * as tlsTakeover from '../../mcu/src/takeover/tls/errors.ts';
import * as native from '../../native/src/errors.ts';
import * as supervisor from '../../standby/src/supervisor/supervisor.ts';
import * as witness from '../../mcu/src/witness/errors.ts';

/** The error classes a module exports. */
function errorClasses(module: Record<string, unknown>): Array<[string, Function]> {
  return Object.entries(module).filter((e): e is [string, Function] => typeof e[1] === 'function' && e[1].prototype instanceof Error);
}

describe('one error base', () => {
  it('every error class of the MCU, the takeover, the native helpers and the supervisor extends McuError', () => {
    const classes = [core, conference, takeover, tlsTakeover, native, supervisor, witness].flatMap((m) => errorClasses(m as Record<string, unknown>));
    assert.ok(classes.length >= 50, `found ${classes.length} error classes`);
    for (const [name, cls] of classes) assert.ok(cls === McuError || cls.prototype instanceof McuError, `${name} extends McuError`);
  });

  it('errors carry their class name, a registered code and { code, message } as JSON', () => {
    for (const err of [
      new RoomFullError('r', 3),
      new conference.SessionStateError('room r exists'),
      new takeover.UnknownNamespaceError('/x'),
      new takeover.OutputLogGapError('c1', 10, 20),
      new takeover.TransportAcceptorStateError('cannot listen: the acceptor is closed'),
      new tlsTakeover.TlsRecordInvalidError('bad_record_mac', 120, 'does not authenticate'),
      new tlsTakeover.TlsCannotContinueError({ ok: false, code: 'TLS_RECORD_CUT', detail: 'cut', direction: 'server', offset: 7 }),
      new native.NativeNoFdError('destroyed'),
      new supervisor.SupervisorClosedError('mcu/src/main.ts'),
      new witness.WitnessUnreachableError('a read of /mcu/x/epoch', ['http://10.0.0.4:2379: ECONNREFUSED']),
    ]) {
      assert.equal(err.name, err.constructor.name);
      assert.ok(err.code in ERROR_CODES, err.code);
      assert.deepEqual(JSON.parse(JSON.stringify(err)), { code: err.code, message: err.message });
    }
  });

  it('a client is told signaling refusals as they are, and only INTERNAL for internals', () => {
    assert.deepEqual(toWireError(new RoomFullError('r', 3)), { code: 'ROOM_FULL', message: new RoomFullError('r', 3).message });
    const secret = 'detail-for-the-log-only';
    for (const internal of [new takeover.ConnectionLostError(secret), new conference.SessionStateError(secret), new native.NativeNoFdError(secret), new Error(secret)]) {
      const wire = toWireError(internal);
      assert.equal(wire.code, 'INTERNAL', internal.name);
      assert.ok(!wire.message.includes(secret), internal.name);
    }
  });
});
