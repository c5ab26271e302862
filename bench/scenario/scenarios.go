package scenario

import (
	"fmt"

	"github.com/xlbproject/xlb/internal/labsvc"
)

// l7Baseline compares the L7 peers with each other; xlb's HTTP proxy joins
// with one line.
func l7Baseline() Scenario {
	const backends = 3
	return Scenario{
		Name:  "l7-baseline",
		Title: "L7: HTTP/1.1 keep-alive through xlb, HAProxy and NGINX",
		Description: "HTTP/1.1 keep-alive GETs of a small response (the backend's name, a few bytes) from the client, " +
			"through the proxy on the gateway's VIP, to 3 backends (round robin, keep-alive upstream).",
		Backends:  backends,
		Workloads: []Workload{httpKeepAlive()},
		Systems: func() []System {
			return []System{
				newXlbHTTP(82, backends), // ratios read xlb ÷ peer
				newHAProxy(80),
				newNGINX(81),
			}
		},
		Method: []string{
			"CPU per request is the CPU time (user + system, /proc/<pid>/stat) of the proxy's whole process tree " +
				"(NGINX's master and worker, HAProxy's single process) over the measured window, divided by the requests served in it, " +
				"at the fixed open-loop rate; both proxies are pinned to the gateway core and configured as in bench/peers/ " +
				"(one thread or worker, keep-alive both sides, no logging).",
		},
	}
}

// l4 compares xlb's userspace L4 engine with nftables DNAT; the XDP engine
// joins with one line.
func l4() Scenario {
	const backends = 3
	return Scenario{
		Name:  "l4",
		Title: "L4: xlb's XDP engine, its userspace engine and nftables DNAT",
		Description: fmt.Sprintf("TCP connections (connect, 64-byte echo, close) and UDP request/response to the VIP's "+
			"tcp %d and udp %d listeners, and a UDP packet rate to udp %d, balanced round robin over 3 echo backends: by xlbd's XDP engine (NAT mode: "+
			"rewritten and redirected in the driver hook, attached only while it is measured), by xlbd's userspace L4 engine "+
			"(a proxy: it terminates the client's connection and opens one to the backend), and by nftables DNAT in the gateway "+
			"(the kernel forwards and conntrack translates).", labsvc.TCPPort, labsvc.UDPPort, FramesPort),
		Backends:  backends,
		Workloads: []Workload{tcpConnect(), udpRequestResponse(), udpFrames()},
		Systems: func() []System {
			return []System{
				newXlbXDP(backends),
				newXlbL4(backends),
				newNFTDNAT(backends),
			}
		},
		Method: []string{
			"CPU per connection or datagram is the gateway core's CPU time over the measured window, divided by the operations " +
				"done in it, at the fixed open-loop rate. Receive packet steering sends every packet the gateway namespace receives to " +
				"the gateway core and every packet the client and backends receive to the load core, so the gateway core holds the " +
				"whole gateway: xlbd's process and its sockets' kernel work, or nftables' NAT and forwarding in softirq. The figure is " +
				"the core's busy time from /proc/stat (user, system, irq, softirq), capped at its irq + softirq time plus the system's " +
				"own process time (/proc/<pid>/stat): on a quiet core the two are equal, and the cap keeps other processes that land " +
				"on the core out of the figure (the notes give how much else ran). The cap counts softirq that interrupted xlbd " +
				"twice, so noise can only make xlb look worse, not better. This replaces \"all cores minus the generator\": with " +
				"tick-based accounting (CONFIG_IRQ_TIME_ACCOUNTING off, as here) softirq work is charged to the task it interrupts, " +
				"so the generator's CPU time contains kernel forwarding work and subtracting it hides part of nftables' cost; that " +
				"figure (which also includes the backends) is still in the notes and in results.json.",
			"xlb-xdp's CPU per operation is not measured here: on veth, XDP runs in the NAPI context of the sending side, i.e. on " +
				"the load core, so the gateway core does not show it (on a NIC it runs in the receiving core's driver poll). Its cost per " +
				"packet is measured by `go test -bench BenchmarkProgram ./dataplane/xdp/` (BPF_PROG_TEST_RUN) instead; its rates and " +
				"latencies here are real. XDP is attached only while xlb-xdp is measured, and every veth uses software TX checksums " +
				"for all systems alike.",
			"The packet rate (pps) is sent by the live-frame generator (bench/xdpgen, BPF_PROG_TEST_RUN with live frames) from the client's " +
				"interface, 60-byte UDP frames over 1024 flows (source ports), and counted where they leave the gateway: an XDP counter on the " +
				"switch's port facing the gateway drops the benchmark's frames and passes the rest (ARP, health checks), so the bridge and the " +
				"backends' kernels, slower than an XDP gateway, are not measured. Max is the highest offered rate delivered with under 1% loss: " +
				"the generator's full speed when the system keeps up, else found by bisection over paced rates (bursts of at most 128 frames, " +
				"spaced by spinning on the load core), since a kernel-path gateway fed faster than it forwards overruns its receive ring and " +
				"delivers a fraction. The generator restores its template's headers in every frame, because pages come back from the receiver " +
				"with its rewrites. On veth every system's receive hook runs on the sending core: xlb-xdp's whole forwarding, and the kernel " +
				"peers' pass program and skb allocation, share the load core with the generator (receive packet steering then moves the kernel " +
				"peers' stack work to the gateway core), so xlb-xdp's figure is bounded by the generator's core and understates it.",
			"The nftables table (bench/peers/nft-dnat.nft.tmpl: prerouting DNAT by numgen inc, round robin as xlb's rr) exists only while nftables " +
				"is measured, so conntrack does not tax xlbd's traffic; conntrack's TIME_WAIT and CLOSE timeouts are 5 s in the gateway " +
				"namespace so the table does not fill during a connection-rate run.",
		},
	}
}

// commonMethod is the part of the method every scenario shares.
func commonMethod(o Options) []string {
	return []string{
		fmt.Sprintf("Lab: network namespaces client -> gateway -> 3 backends on a bridge (internal/netlab), veth links. "+
			"The load generator (`xlb-bench http|tcp|udp -json`, a separate process in the client namespace) runs under taskset "+
			"on core %d, together with the test backends (this benchmark's process); the system under test runs on core %d.", o.LoadCPU, o.GatewayCPU),
		"Rounds are interleaved (A B, A B, ...), all systems started once and kept running. Max rate: closed loop, each connection " +
			"sends its next operation when the previous one completes. Latency and CPU: open loop at the fixed rate, half the slowest " +
			"system's max rate unless set, latency measured from each operation's scheduled send time (no coordinated omission). " +
			"A max rate is bounded by the gateway core only when that core is near 100% busy (the notes give its load); otherwise " +
			"the load core, shared by the generator and the backends, was the limit and the figure understates the faster system.",
	}
}
