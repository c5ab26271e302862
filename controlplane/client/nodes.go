package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// ParseNodes reads a comma-separated node list: each a unix socket (a path,
// or unix://PATH) or the HOST:PORT of a TCP control listener, which takes
// the certificate files of base.
func ParseNodes(list string, base Options) ([]Options, error) {
	var nodes []Options
	seen := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			return nil, fmt.Errorf("--nodes %q: an empty node", list)
		}
		if seen[n] {
			return nil, fmt.Errorf("--nodes: %s is named twice", n)
		}
		seen[n] = true
		o := base
		o.Socket, o.Addr = "", ""
		switch {
		case strings.HasPrefix(n, "unix://"):
			o.Socket = strings.TrimPrefix(n, "unix://")
		case strings.HasPrefix(n, "/") || strings.HasPrefix(n, "."):
			o.Socket = n
		default:
			o.Addr = n
		}
		nodes = append(nodes, o)
	}
	return nodes, nil
}

// Label is how a report names the node: its socket or address.
func (o Options) Label() string {
	if o.Addr != "" {
		return o.Addr
	}
	return o.Socket
}

// NodeResult is one node's part of ApplyNodes.
type NodeResult struct {
	Node string // Options.Label
	Name string // node.name of its running configuration, if set
	// Version is the node's version after the apply (the one it had when
	// nothing changed); Changes what the apply changed there.
	Version uint64
	Changes []*xlbv1.Change
	Err     error
}

// ErrNotApplied marks the nodes left alone because another refused the
// configuration.
var ErrNotApplied = errors.New("not applied: another node refused the configuration")

// ApplyNodes applies one configuration to several nodes. Every node keeps
// its own node section (interfaces, announce priority, listeners of its
// control and metrics endpoints): cfg's is replaced by the one it runs.
// First each node reports its version and validates the configuration (a
// dry run); if any node refuses it, it is applied nowhere. Then it is
// applied node by node, each expecting the version it reported (or expect,
// when not 0), so that a change made meanwhile is refused, not overwritten.
// A node that cannot be reached is reported and the others are applied.
func ApplyNodes(ctx context.Context, nodes []Options, cfg *xlbv1.Config, expect uint64, comment string) []NodeResult {
	type node struct {
		cl      *Client
		cfg     *xlbv1.Config
		version uint64
	}
	res := make([]NodeResult, len(nodes))
	ready := make([]*node, len(nodes))
	refused := false
	for i, o := range nodes {
		res[i].Node = o.Label()
		cl, err := Dial(o)
		if err != nil {
			res[i].Err = err
			continue
		}
		defer cl.Close()
		cur, err := cl.Get(ctx, &xlbv1.GetRequest{})
		if err != nil {
			res[i].Err = err
			continue
		}
		res[i].Name = cur.GetConfig().GetNode().GetName()
		res[i].Version = cur.GetInfo().GetVersion()
		own := proto.Clone(cfg).(*xlbv1.Config)
		own.Node = cur.GetConfig().GetNode()
		if _, err := cl.Diff(ctx, &xlbv1.DiffRequest{Config: own}); err != nil {
			res[i].Err = err
			refused = refused || isRefusal(err)
			continue
		}
		ready[i] = &node{cl: cl, cfg: own, version: res[i].Version}
	}
	for i, n := range ready {
		if n == nil {
			continue
		}
		if refused {
			res[i].Err = ErrNotApplied
			continue
		}
		want := n.version
		if expect != 0 {
			want = expect
		}
		resp, err := n.cl.Apply(ctx, &xlbv1.ApplyRequest{Config: n.cfg, ExpectedVersion: want, Comment: comment})
		if err != nil {
			res[i].Err = err
			continue
		}
		res[i].Version, res[i].Changes = resp.GetVersion(), resp.GetChanges()
	}
	return res
}

// isRefusal tells a configuration the node rejects from a node that did
// not answer.
func isRefusal(err error) bool {
	code := status.Code(err)
	return code == codes.InvalidArgument || code == codes.FailedPrecondition
}
