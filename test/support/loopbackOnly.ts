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
  if (options.path === undefined && !LOOPBACK.has(host)) {
    throw new Error(`loopbackOnly: refused a connection to ${host} (tests stay on this machine)`);
  }
  return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
} as typeof net.Socket.prototype.connect;
