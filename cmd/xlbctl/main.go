// Command xlbctl drives xlbd's control API (controlplane/client): a thin
// layer of flags and tables over the RPCs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/xlbproject/xlb/controlplane/client"
	"github.com/xlbproject/xlb/internal/buildinfo"
)

const usage = `xlbctl: control a running xlbd

Usage:
  xlbctl [flags] COMMAND [flags] [args]

Commands:
  apply -f FILE [--expect-version N] [--comment TEXT]
                                  validate and apply a configuration file as the next version;
                                  with --nodes, on every node (each keeps its own node section,
                                  and expects the version it has unless --expect-version)
  get [--version N]               the running (or a kept) configuration; -o json for all of
                                  it, -o yaml for a file apply -f takes (keys left out: kept)
  versions                        the kept versions, newest first
  diff -f FILE                    what applying FILE would change (nothing is applied)
  rollback VERSION                apply a kept version again, as the next version
  set-weight ADDR[:PORT] WEIGHT [--lb ID] [--group ID]
                                  change a server's weight (0..100): a new version
  drain ADDR[:PORT]               no new connections or requests; open ones finish
  enable ADDR[:PORT]              back in rotation
  disable ADDR[:PORT]             no new connections or requests
  watch health [--initial=false]  stream backend health changes until interrupted
  stats                           counters per load balancer, listener and backend
  snat                            SNAT port use per public IP and host
  certs list | delete ID | upload --id ID --type server|ca --cert-pem FILE [--key-pem FILE]
                                  certificates (private keys are never shown)
  version                         print xlbctl's version

Flags (before or after the command):
  --socket PATH      xlbd's unix socket (default /run/xlb/xlb.sock)
  --addr HOST:PORT   a TCP control listener instead (mutual TLS: --cert, --key, --ca)
  --nodes A,B,...    apply to several nodes: each a socket path (or unix://PATH) or HOST:PORT;
                     a report per node, exit 1 if any failed
  --cert, --key      client certificate and key; --ca: the CA of xlbd's certificate
  --server-name      the name in xlbd's certificate (default: the --addr host)
  -o table|json      output format (default table; get also takes yaml)
  --timeout D        per-call timeout (default 10s; not for watch)
`

// common are the flags every command takes.
type common struct {
	client.Options
	output  string
	timeout time.Duration
	nodes   string // --nodes: several xlbd (apply only)
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Socket, "socket", c.Socket, "xlbd's unix socket")
	fs.StringVar(&c.Addr, "addr", c.Addr, "TCP control listener HOST:PORT (mutual TLS)")
	fs.StringVar(&c.nodes, "nodes", c.nodes, "several nodes (apply): socket paths or HOST:PORT, comma-separated")
	fs.StringVar(&c.CertFile, "cert", c.CertFile, "client certificate (PEM)")
	fs.StringVar(&c.KeyFile, "key", c.KeyFile, "client private key (PEM)")
	fs.StringVar(&c.CAFile, "ca", c.CAFile, "CA of xlbd's certificate (PEM)")
	fs.StringVar(&c.ServerName, "server-name", c.ServerName, "name in xlbd's certificate")
	fs.StringVar(&c.output, "o", c.output, "output: table or json (get: also yaml)")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "per-call timeout")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks a mistake in the command line (exit 2).
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	cm := &common{output: "table", timeout: 10 * time.Second}
	global := flag.NewFlagSet("xlbctl", flag.ContinueOnError)
	global.SetOutput(stderr)
	global.Usage = func() { fmt.Fprint(stderr, usage) }
	cm.register(global)
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	args = global.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version":
		fmt.Fprintf(stdout, "xlbctl %s (%s)\n", buildinfo.Version, buildinfo.GoVersion())
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "xlbctl: unknown command %q\n\n%s", name, usage)
		return 2
	}
	fs := flag.NewFlagSet("xlbctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cm.register(fs)
	ctx := &cmdContext{common: cm, fs: fs, stdout: stdout, stderr: stderr}
	parse := cmd(ctx)
	if err := parseInterleaved(fs, rest); err != nil {
		return 2
	}
	switch {
	case cm.output == "yaml" && name != "get":
		fmt.Fprintln(stderr, "xlbctl: -o yaml: only get writes YAML (a file apply -f takes)")
		return 2
	case cm.nodes != "" && name != "apply":
		fmt.Fprintf(stderr, "xlbctl %s: --nodes: only apply runs on several nodes\n", name)
		return 2
	case cm.output != "table" && cm.output != "json" && cm.output != "yaml":
		fmt.Fprintf(stderr, "xlbctl: -o %q: want table or json (or yaml for get)\n", cm.output)
		return 2
	}
	err := parse(fs.Args())
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "xlbctl %s: %v\n", name, strings.TrimPrefix(err.Error(), "usage: "))
		return 2
	default:
		fmt.Fprintf(stderr, "xlbctl %s: %s\n", name, client.Describe(err))
		return 1
	}
}

// parseInterleaved lets flags follow positional arguments
// ("drain 10.0.0.1 -o json").
func parseInterleaved(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	return fs.Parse(append([]string{"--"}, positional...))
}

// cmdContext is what a command's body works with.
type cmdContext struct {
	*common
	fs             *flag.FlagSet
	stdout, stderr io.Writer
}

// dial connects for one command.
func (c *cmdContext) dial() (*client.Client, error) {
	return client.Dial(c.Options)
}

// call bounds one RPC by --timeout.
func (c *cmdContext) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.timeout)
}

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}
