// Package labsvc starts the services of a lab built with internal/netlab:
// the standard test backends in each backend namespace and xlbd in the
// gateway. The demo and the end-to-end tests share it, so what `make run`
// shows is what the tests check.
package labsvc
