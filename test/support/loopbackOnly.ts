/**
 * Loaded with `node --require` into a process a test starts: any TCP connection to a host other than loopback
 * throws at once, so a test of a real credential or a real Graph root can never send anything off the machine
 * (no instance metadata probe to 169.254.169.254, no login.microsoftonline.com).
 */
import net from 'node:net';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const connect = net.Socket.prototype.connect;

net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]) {
  // net.createConnection passes its normalised [options, listener] as one array argument.
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  const options = (typeof first === 'object' && first !== null ? first : { port: first, host: args[1] }) as {
    host?: unknown;
    path?: unknown;
  };
  const host = typeof options.host === 'string' ? options.host : 'localhost';
  // A Unix socket has a path; node:http passes `path: null` for a TCP connection.
  if (typeof options.path !== 'string' && !LOOPBACK.has(host)) {
    const message = `loopbackOnly: refused a connection to ${host} (tests stay on this machine)`;
    // Also on stderr: a library that swallows the error (a resource detector, a statistics sender) cannot hide it.
    process.stderr.write(`${message}\n`);
    throw new Error(message);
  }
  return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
} as typeof net.Socket.prototype.connect;
