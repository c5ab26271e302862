// Package announce tells the routers which VIPs this node serves: it keeps
// one route per announced VIP in a kernel routing table that the routing
// daemon (BIRD or FRR) exports over BGP (docs/scale-out.md).
//
// A VIP is announced while the node runs, is not draining, and has at
// least one healthy, enabled backend behind it; otherwise its route is
// withdrawn, and the routers send its traffic to the other nodes. In ecmp
// mode every node announces with the same metric and the routers spread
// flows over them; in active_standby mode the metric is the node's
// priority, which the routing daemon turns into a BGP preference (MED), so
// the lowest healthy priority wins and a standby takes over when the
// active node withdraws or dies.
//
// The routes carry protocol RouteProtocol, so the announcer recognises its
// own (after a restart or a crash) and never touches anyone else's.
package announce
