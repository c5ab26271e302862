// Package l4 is xlb's userspace layer-4 engine: it proxies TCP and UDP
// listeners wherever the XDP fast path is off or cannot run.
//
// TCP connections are spliced (zero copy between the two sockets) with
// correct half-close: each direction ends on its own, so a client that shuts
// down its sending side still receives the rest of the answer. UDP is proxied
// per client address as a session with an idle timeout and a per-listener
// session cap. Both pick backends from dataplane/pool (schedulers, source-IP
// persistence, master/slave failover) and keep the active counts wlc reads.
//
// Unlike the XDP engine this is a full proxy: backends see the gateway's
// address, not the client's.
package l4
