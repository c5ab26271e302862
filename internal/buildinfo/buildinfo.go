// Package buildinfo carries the version stamped into the binaries at link time.
package buildinfo

import "runtime"

// Version is set with -ldflags "-X github.com/xlbproject/xlb/internal/buildinfo.Version=...".
// It is a variable only because the linker can set nothing else; nothing assigns it at run time.
var Version = "dev"

// GoVersion is the toolchain the binary was built with.
func GoVersion() string { return runtime.Version() }
