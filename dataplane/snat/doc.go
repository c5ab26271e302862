// Package snat plans the port blocks of SNAT pools: which ports of which
// public IP each private host translates to. It is pure bookkeeping: the
// XDP engine (dataplane/xdp) writes the plan into the data path, which
// claims individual ports per destination, and reports back which ports
// its translations hold.
//
// The rules (docs/snat.md):
//   - ports 1024-65535 of each public IP, separately per protocol (tcp, udp,
//     ICMP echo ids), are cut into blocks whose size follows the pool's
//     host count (BlockSize);
//   - every host of the pool gets its first block in advance, so its first
//     packet never waits for one; a host may take more blocks, up to its
//     fair share of the pool (the pool's blocks divided by its hosts), from
//     spares the data path takes without userspace;
//   - a block is taken from a host only when no translation holds a port
//     of it: a tier change or a removed host never breaks a connection.
package snat
