// Package health runs active health checks (tcp, http, udp) against backend
// servers and publishes their up/down state.
//
// The control plane compiles the configuration into Targets and hands the
// whole desired set to Manager.Set. One checker runs per distinct Key
// (address plus normalised check spec), however many owners (listeners,
// server groups) registered it, so a backend shared by several groups is
// checked once per interval. State follows HAProxy's rise/fall counter: an up
// backend goes down after exactly Fall consecutive failures, a down backend
// goes up after exactly Rise consecutive successes.
//
// Changes reach the engines and the gRPC event stream through Subscribe or
// OnChange; a slow subscriber never blocks the checks.
package health
