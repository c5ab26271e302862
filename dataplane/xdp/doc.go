// Package xdp loads xlb's XDP load balancer (bpf/xdp/lb.c), attaches it to
// the node's interfaces, writes its configuration maps from the same pools
// the userspace engines use, sweeps its flow table and exports its counters.
//
// Maps and links are pinned under a bpffs directory, so a restarted xlbd
// finds the program still attached and every flow still in its table:
// established connections keep flowing while the daemon is down, and the new
// daemon adopts the listener and backend ids it finds in the pinned maps.
package xdp
