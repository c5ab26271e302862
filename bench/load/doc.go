// Package load holds xlb-bench's load generators: HTTP (HTTP/1.1 on a small dedicated
// client, h2c and h2 on net/http's HTTP/2 transport, or any http.RoundTripper), TCP
// (connection rate and echo throughput) and UDP (request/response against an echo
// server).
//
// Every generator runs either closed loop (N workers back to back, each with its own
// connection or socket) or open loop at a fixed rate. Open loop follows wrk2: requests
// are scheduled at fixed intervals and a request's latency is measured from its
// scheduled send time, so a stall of the target (or of the generator) is charged to
// every request that should have been sent meanwhile, not hidden by the stall
// (coordinated omission).
//
// Latencies go into per-worker HDR histograms (1 µs .. 60 s, 3 significant digits)
// that are merged once at the end, so the hot path takes no lock. Failures are counted
// by kind (see the Err* constants), never panicked on.
package load
