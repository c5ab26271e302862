// Package serve provides fast test backends shared by the tests, the demo and the
// benchmarks: an HTTP server with endpoints that expose what a load balancer did to a
// request (names, headers, cookies, sized bodies, streamed echo, delays, status codes,
// WebSocket echo, h2c), a TCP echo server and a UDP echo server. Each backend answers
// "who am I" with its name, so a test can tell which backend a balancer chose, and keeps
// counters that benchmarks compare with the load generator's own counts.
//
// Every Serve method owns its listener or packet connection: it closes it and all the
// connections it accepted when its context ends, and returns nil in that case.
package serve
