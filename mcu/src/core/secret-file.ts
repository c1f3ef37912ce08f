/**
 * A secret read from a file (replication.secretFile), the way ssh treats a private key: refused
 * unless only its owner can read it. Read once at start, through one descriptor (the checks and
 * the read are of the same file, even if the path is swapped meanwhile).
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** Larger than any secret: a file this big was named by mistake. */
export const MAX_SECRET_FILE_BYTES = 4096;

/** The secret, or why the file cannot hold it (one phrase, for a config error line). */
export type SecretFileResult = { secret: string } | { problem: string };

/**
 * Reads the secret in `path` (absolute): a regular file, no permission bits for group or others
 * (mode & 0o077 === 0), at most MAX_SECRET_FILE_BYTES, holding at least `minLength` characters
 * once the line ending(s) at its end are dropped (`echo secret > file` works).
 */
export function readSecretFile(path: string, minLength: number): SecretFileResult {
  let fd: number;
  try {
    // Non-blocking: a FIFO named by mistake is refused below instead of hanging the start.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return { problem: openProblem(path, err as NodeJS.ErrnoException) };
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return { problem: `${path} is not a regular file` };
    const mode = stat.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      return { problem: `${path} is accessible by group or others (mode ${octal(mode)}): make it readable by its owner only (chmod 600 ${path})` };
    }
    if (stat.size > MAX_SECRET_FILE_BYTES) return { problem: `${path} is ${stat.size} bytes, larger than a secret (at most ${MAX_SECRET_FILE_BYTES})` };
    const buffer = Buffer.alloc(MAX_SECRET_FILE_BYTES + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > MAX_SECRET_FILE_BYTES) return { problem: `${path} is larger than a secret (at most ${MAX_SECRET_FILE_BYTES} bytes)` };
    }
    const secret = buffer.subarray(0, length).toString('utf8').replace(/[\r\n]+$/, '');
    if (secret.length < minLength) return { problem: `${path} holds ${secret.length} characters: expected at least ${minLength}` };
    return { secret };
  } catch (err) {
    return { problem: `cannot read ${path}: ${(err as Error).message}` };
  } finally {
    closeSync(fd);
  }
}

function openProblem(path: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return `${path} does not exist`;
    case 'EACCES':
    case 'EPERM':
      return `${path} cannot be read by this process (uid ${process.getuid?.() ?? '?'}): run it as the file's owner`;
    case 'EISDIR':
      return `${path} is not a regular file`;
    default:
      return `cannot open ${path}: ${err.message}`;
  }
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}
