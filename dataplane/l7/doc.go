// Package l7 is xlb's HTTP proxy engine: http listeners (HTTP/1.1, h2c with
// prior knowledge and WebSocket), forwarding rules by domain and path,
// cookie persistence, forwarded headers, gzip, passive health and metrics.
//
// HTTP/1.1 has its own fast path instead of net/http: a connection reads
// into a pooled buffer, the head is parsed in place into byte slices,
// routing probes maps with those slices, the backend's request head is
// rendered into a reused buffer and written to a pooled keep-alive backend
// connection in one write, and the response head is parsed the same way. A
// keep-alive request with a small answer allocates nothing. Bodies stream
// through pooled buffers and are re-framed (Content-Length kept, chunked
// decoded and re-encoded), so the proxy and the backend never disagree on
// where a message ends; a request body is pumped by a second goroutine so
// that backends that answer while reading (echo, early errors, 100-continue)
// cannot deadlock against the proxy.
//
// HTTP/2 connections (detected by their preface) are handed to net/http's
// HTTP/2 server; their requests go through the same router, persistence,
// headers, gzip, backend pools and metrics.
//
// Configuration is two-phase like the other engines: Prepare binds new
// sockets and compiles routers and pools, Commit swaps each listener's state
// behind an atomic pointer. A request reads the state once when it starts,
// so requests in flight finish on the configuration they started with while
// keep-alive connections pick up the new one for their next request.
//
// Persistence cookies carry an opaque server id, HMAC-SHA256 of the backend
// id under a per-engine secret: it does not reveal the backend's address and
// cannot be forged to reach an arbitrary backend.
//
// Passive health is this engine's own: consecutive connection failures or
// 5xx answers take a backend out of its rotation for a cooldown without
// touching the shared health state the active checks own.
package l7
