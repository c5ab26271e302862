package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/client"
	"github.com/xlbproject/xlb/controlplane/config"
)

// A command registers its flags on c.fs and returns its body, which gets
// the positional arguments.
type command func(c *cmdContext) func(args []string) error

var commands = map[string]command{
	"apply":      cmdApply,
	"get":        cmdGet,
	"versions":   cmdVersions,
	"diff":       cmdDiff,
	"rollback":   cmdRollback,
	"set-weight": cmdSetWeight,
	"drain":      cmdState(xlbv1.AdminState_drain),
	"enable":     cmdState(xlbv1.AdminState_enabled),
	"disable":    cmdState(xlbv1.AdminState_disabled),
	"watch":      cmdWatch,
	"stats":      cmdStats,
	"snat":       cmdSnat,
	"certs":      cmdCerts,
}

// withClient runs fn with a connection and a bounded context.
func (c *cmdContext) withClient(fn func(ctx context.Context, cl *client.Client) error) error {
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := c.call()
	defer cancel()
	return fn(ctx, cl)
}

// readFile decodes a configuration file as the API takes it: certificate
// files inlined, validation left to xlbd (which names every field).
func readFile(path string) (*xlbv1.Config, error) {
	if path == "" {
		return nil, usageErr("-f FILE is required")
	}
	cfg, err := config.DecodeFile(path)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			return nil, fmt.Errorf("%s:\n%w", path, err)
		}
		return nil, err
	}
	return cfg, nil
}

func cmdApply(c *cmdContext) func([]string) error {
	file := c.fs.String("f", "", "configuration file (YAML)")
	expect := c.fs.Uint64("expect-version", 0, "refuse unless this is the current version")
	comment := c.fs.String("comment", "", "a note kept with the version")
	return func([]string) error {
		cfg, err := readFile(*file)
		if err != nil {
			return err
		}
		if c.nodes != "" {
			return c.applyNodes(cfg, *expect, *comment)
		}
		return c.withClient(func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.Apply(ctx, &xlbv1.ApplyRequest{Config: cfg, ExpectedVersion: *expect, Comment: *comment})
			if err != nil {
				return err
			}
			return c.printApply(resp)
		})
	}
}

// errNodesFailed is the exit status of an apply that failed on a node; the
// report already says where and why.
var errNodesFailed = errors.New("failed on some nodes")

// applyNodes is apply --nodes: one configuration, a result per node.
func (c *cmdContext) applyNodes(cfg *xlbv1.Config, expect uint64, comment string) error {
	nodes, err := client.ParseNodes(c.nodes, c.Options)
	if err != nil {
		return usageErr("%v", err)
	}
	// One --timeout for each node's calls.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(len(nodes))*c.timeout)
	defer cancel()
	res := client.ApplyNodes(ctx, nodes, cfg, expect, comment)
	if err := c.printNodes(res); err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return errNodesFailed
		}
	}
	return nil
}

func cmdGet(c *cmdContext) func([]string) error {
	version := c.fs.Uint64("version", 0, "a kept version (default: the running one)")
	return func([]string) error {
		return c.withClient(func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.Get(ctx, &xlbv1.GetRequest{Version: *version})
			if err != nil {
				return err
			}
			switch c.output {
			case "json":
				return printJSON(c.stdout, resp)
			case "yaml":
				out, err := config.EncodeYAML(resp.GetConfig())
				if err != nil {
					return err
				}
				info := resp.GetInfo()
				fmt.Fprintf(c.stdout, "# xlb configuration version %d (%s)\n%s", info.GetVersion(), info.GetSource(), out)
				return nil
			}
			printConfig(c.stdout, resp)
			return nil
		})
	}
}

func cmdVersions(c *cmdContext) func([]string) error {
	return func([]string) error {
		return c.withClient(func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.ListVersions(ctx, &xlbv1.ListVersionsRequest{})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(c.stdout, resp)
			}
			printVersions(c.stdout, resp)
			return nil
		})
	}
}

func cmdDiff(c *cmdContext) func([]string) error {
	file := c.fs.String("f", "", "configuration file (YAML)")
	return func([]string) error {
		cfg, err := readFile(*file)
		if err != nil {
			return err
		}
		return c.withClient(func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.Diff(ctx, &xlbv1.DiffRequest{Config: cfg})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(c.stdout, resp)
			}
			fmt.Fprintf(c.stdout, "against version %d:\n%s", resp.GetBaseVersion(), resp.GetText())
			return nil
		})
	}
}

func cmdRollback(c *cmdContext) func([]string) error {
	expect := c.fs.Uint64("expect-version", 0, "refuse unless this is the current version")
	return func(args []string) error {
		if len(args) != 1 {
			return usageErr("rollback VERSION")
		}
		v, err := strconv.ParseUint(args[0], 10, 64)
		if err != nil || v == 0 {
			return usageErr("%q is not a version number", args[0])
		}
		return c.withClient(func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.Rollback(ctx, &xlbv1.RollbackRequest{Version: v, ExpectedVersion: *expect})
			if err != nil {
				return err
			}
			return c.printApply(resp)
		})
	}
}

// parseTarget reads ADDR or ADDR:PORT ([v6]:port).
func parseTarget(s string) (string, uint32, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().String(), uint32(ap.Port()), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String(), 0, nil
	}
	return "", 0, usageErr("%q is not ADDRESS or ADDRESS:PORT", s)
}

func cmdSetWeight(c *cmdContext) func([]string) error {
	lb := c.fs.String("lb", "", "only this load balancer's default pool")
	group := c.fs.String("group", "", "only this server group")
	expect := c.fs.Uint64("expect-version", 0, "refuse unless this is the current version")
	return func(args []string) error {
		if len(args) != 2 {
			return usageErr("set-weight ADDR[:PORT] WEIGHT")
		}
		addr, port, err := parseTarget(args[0])
		if err != nil {
			return err
		}
		w, err := strconv.ParseUint(args[1], 10, 32)
		if err != nil {
			return usageErr("weight %q is not a number 0..100", args[1])
		}
		return c.withClient(func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.SetServerWeight(ctx, &xlbv1.SetServerWeightRequest{
				Address: addr, Port: port, Weight: uint32(w), LoadBalancer: *lb, ServerGroup: *group, ExpectedVersion: *expect,
			})
			if err != nil {
				return err
			}
			return c.printApply(resp)
		})
	}
}

func cmdState(st xlbv1.AdminState) command {
	return func(c *cmdContext) func([]string) error {
		return func(args []string) error {
			if len(args) != 1 {
				return usageErr("ADDR[:PORT]")
			}
			addr, port, err := parseTarget(args[0])
			if err != nil {
				return err
			}
			return c.withClient(func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.SetServerState(ctx, &xlbv1.SetServerStateRequest{Address: addr, Port: port, State: st})
				if err != nil {
					return err
				}
				if c.output == "json" {
					return printJSON(c.stdout, resp)
				}
				for _, b := range resp.GetBackends() {
					fmt.Fprintf(c.stdout, "%s %s\n", b, st)
				}
				return nil
			})
		}
	}
}

func cmdWatch(c *cmdContext) func([]string) error {
	initial := c.fs.Bool("initial", true, "print every backend's current state first")
	return func(args []string) error {
		if len(args) != 1 || args[0] != "health" {
			return usageErr("watch health")
		}
		cl, err := c.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		stream, err := cl.WatchHealth(ctx, &xlbv1.WatchHealthRequest{Initial: *initial})
		if err != nil {
			return err
		}
		if c.output == "table" {
			fmt.Fprintf(c.stdout, "%-25s %-22s %-6s %-6s %s\n", "TIME", "BACKEND", "FROM", "TO", "REASON")
		}
		for {
			ev, err := stream.Recv()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if c.output == "json" {
				if err := printJSONLine(c.stdout, ev); err != nil {
					return err
				}
				continue
			}
			printHealthEvent(c.stdout, ev)
		}
	}
}

func cmdStats(c *cmdContext) func([]string) error {
	return func([]string) error {
		return c.withClient(func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.GetStats(ctx, &xlbv1.GetStatsRequest{})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(c.stdout, resp)
			}
			printStats(c.stdout, resp)
			return nil
		})
	}
}

func cmdSnat(c *cmdContext) func([]string) error {
	return func([]string) error {
		return c.withClient(func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.GetSnatStatus(ctx, &xlbv1.GetSnatStatusRequest{})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(c.stdout, resp)
			}
			printSnat(c.stdout, resp)
			return nil
		})
	}
}

func cmdCerts(c *cmdContext) func([]string) error {
	id := c.fs.String("id", "", "upload: the certificate's id")
	typ := c.fs.String("type", "server", "upload: server or ca")
	expect := c.fs.Uint64("expect-version", 0, "refuse unless this is the current version")
	// --cert and --key are the client's own certificate (mutual TLS), so
	// the uploaded files have flags of their own.
	certPEM := c.fs.String("cert-pem", "", "upload: the certificate chain file (PEM, leaf first)")
	keyPEM := c.fs.String("key-pem", "", "upload: the private key file (PEM; server only)")
	return func(args []string) error {
		if len(args) == 0 {
			return usageErr("certs list | upload | delete ID")
		}
		switch args[0] {
		case "list":
			return c.withClient(func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.ListCertificates(ctx, &xlbv1.ListCertificatesRequest{})
				if err != nil {
					return err
				}
				if c.output == "json" {
					return printJSON(c.stdout, resp)
				}
				printCerts(c.stdout, resp.GetCertificates())
				return nil
			})
		case "upload":
			t, ok := xlbv1.Certificate_Type_value[*typ]
			if !ok || t == 0 {
				return usageErr("--type %q: server or ca", *typ)
			}
			if *id == "" || *certPEM == "" {
				return usageErr("certs upload --id ID --type server|ca --cert-pem FILE [--key-pem FILE]")
			}
			cert := &xlbv1.Certificate{Id: *id, Type: xlbv1.Certificate_Type(t)}
			b, err := os.ReadFile(*certPEM)
			if err != nil {
				return err
			}
			cert.CertPem = string(b)
			if *keyPEM != "" {
				k, err := os.ReadFile(*keyPEM)
				if err != nil {
					return err
				}
				cert.KeyPem = string(k)
			}
			return c.withClient(func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.UploadCertificate(ctx, &xlbv1.UploadCertificateRequest{Certificate: cert, ExpectedVersion: *expect})
				if err != nil {
					return err
				}
				if c.output == "json" {
					return printJSON(c.stdout, resp)
				}
				fmt.Fprintf(c.stdout, "version %d\n", resp.GetVersion())
				printCerts(c.stdout, []*xlbv1.CertificateInfo{resp.GetCertificate()})
				return nil
			})
		case "delete":
			if len(args) != 2 {
				return usageErr("certs delete ID")
			}
			return c.withClient(func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.DeleteCertificate(ctx, &xlbv1.DeleteCertificateRequest{Id: args[1], ExpectedVersion: *expect})
				if err != nil {
					return err
				}
				return c.printApply(resp)
			})
		}
		return usageErr("certs list | upload | delete ID")
	}
}
