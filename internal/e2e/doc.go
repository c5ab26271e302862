// Package e2e holds end-to-end tests: a real xlbd binary in the gateway
// namespace of an internal/netlab lab, real backends and real clients. The
// tests need root; with CI=true they fail instead of skipping without it.
package e2e
