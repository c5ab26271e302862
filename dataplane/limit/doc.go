// Package limit holds the load balancers' limits as the engines enforce
// them: a concurrency gauge (max connections), rates (new connections and
// requests per second) and bandwidth shapers (a load balancer's total and
// its listeners' reserved peaks).
//
// Everything here is lock-free and allocation-free on the hot path: a rate
// is a GCRA (generic cell rate algorithm) on one atomic word, the
// theoretical arrival time of the next cell, so a check is a load and a
// compare-and-swap. The parameters are atomics too, so the control plane
// changes a limit in place and the counts in flight survive a reload.
package limit
