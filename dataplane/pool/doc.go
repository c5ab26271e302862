// Package pool holds xlb's server groups as the engines pick from them:
// backends, pools and schedulers, shared by the userspace L4 proxy, the L7
// proxy and the XDP engine (which copies its tables from a Snapshot). Its
// rules are the product's rules:
//
//   - A Backend is one address:port, interned by a Registry so every pool
//     that names it shares one health state, one admin state and one
//     active-connection count.
//   - Only eligible backends get new picks: up, admin state enabled and
//     weight > 0. Drain and disabled both stop new picks; drain lets the
//     engines finish existing connections. No eligible backend: ErrNoBackend.
//   - Schedulers: rr (equal turns), wrr (NGINX smooth weighted round robin,
//     5:1:1 gives a a b a c a a), wlc (least active/weight, ties by the wrr
//     order), maglev (weighted consistent hash, prime table > 100 x backends,
//     the same table on every node for the same backends).
//   - master_slave groups send to the master while it is eligible, else to
//     the slave, and back to the master as soon as it recovers.
//   - Source-IP persistence keeps a client on one backend until the timeout
//     since its last use, unless that backend stops being eligible.
//
// Picking takes no lock shared between pools and allocates nothing: it
// reads an immutable Snapshot rebuilt whenever health, admin state or the
// configuration changes. Update swaps a pool's configuration atomically and
// keeps the state of the backends that stay.
package pool
