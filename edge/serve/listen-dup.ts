import net from 'node:net'

/**
 * `node listen-dup.js`, forked by a serve thread (edge/serve/serve-thread.ts) with
 * the edge's listening socket as its fd 4: sends that socket back over the IPC
 * channel, which gives the thread a descriptor of its own for it, and exits.
 *
 * Node 20 has no dup(2) and no SO_REUSEPORT; passing a handle over IPC is the
 * public way to a second descriptor of one socket (the cluster module does
 * the same). With its own descriptor a thread can close its listener without
 * closing the main thread's, and the other way round.
 *
 * The socket is sent without ever listening here, so this process never
 * accepts a player's connection: the handle is wrapped as a non-reading
 * Socket and handed to a Server only as the thing to send.
 */
const sock = new net.Socket({ fd: 4, readable: false, writable: false })
const server = new net.Server() as net.Server & { _handle: unknown }
server._handle = (sock as net.Socket & { _handle: unknown })._handle
process.send!('listening-socket', server, undefined, err => {
  if (err) process.exitCode = 1
  process.disconnect()
})
