package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/client"
)

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// printJSONLine writes one message per line (streams).
func printJSONLine(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().Local().Format(time.RFC3339)
}

func (c *cmdContext) printApply(resp *xlbv1.ApplyResponse) error {
	if c.output == "json" {
		return printJSON(c.stdout, resp)
	}
	if len(resp.GetChanges()) == 0 {
		fmt.Fprintf(c.stdout, "version %d: no changes\n", resp.GetVersion())
		return nil
	}
	fmt.Fprintf(c.stdout, "version %d applied:\n", resp.GetVersion())
	for _, ch := range resp.GetChanges() {
		switch ch.GetKind() {
		case xlbv1.Change_added:
			fmt.Fprintf(c.stdout, "+ %s\n", ch.GetPath())
		case xlbv1.Change_removed:
			fmt.Fprintf(c.stdout, "- %s\n", ch.GetPath())
		default:
			fmt.Fprintf(c.stdout, "~ %s: %s -> %s\n", ch.GetPath(), clip(ch.GetOldValue()), clip(ch.GetNewValue()))
		}
	}
	return nil
}

// printNodes reports apply --nodes: a line per node (and, in the table,
// what changed there).
func (c *cmdContext) printNodes(res []client.NodeResult) error {
	if c.output == "json" {
		type node struct {
			Node    string `json:"node"`
			Name    string `json:"name,omitempty"`
			Version uint64 `json:"version"`
			Changes int    `json:"changes"`
			Error   string `json:"error,omitempty"`
		}
		out := make([]node, len(res))
		for i, r := range res {
			out[i] = node{Node: r.Node, Name: r.Name, Version: r.Version, Changes: len(r.Changes)}
			if r.Err != nil {
				out[i].Error = client.Describe(r.Err)
			}
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"nodes": out})
	}
	for _, r := range res {
		who := r.Node
		if r.Name != "" {
			who += " (" + r.Name + ")"
		}
		switch {
		case r.Err != nil:
			fmt.Fprintf(c.stdout, "%s: FAILED: %s\n", who, client.Describe(r.Err))
		case len(r.Changes) == 0:
			fmt.Fprintf(c.stdout, "%s: ok, version %d: no changes\n", who, r.Version)
		default:
			fmt.Fprintf(c.stdout, "%s: ok, version %d applied (%d changes)\n", who, r.Version, len(r.Changes))
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

func printConfig(w io.Writer, g *xlbv1.GetResponse) {
	info := g.GetInfo()
	fmt.Fprintf(w, "version %d  %s  %s", info.GetVersion(), ts(info.GetCreated()), info.GetSource())
	if info.GetComment() != "" {
		fmt.Fprintf(w, "  %q", info.GetComment())
	}
	fmt.Fprintln(w)
	cfg := g.GetConfig()
	tw := table(w)
	fmt.Fprintln(tw, "\nLOAD BALANCER\tADDRESS\tLISTENER\tSCHEDULER\tSERVERS")
	for _, lb := range cfg.GetLoadBalancers() {
		for _, l := range lb.GetListeners() {
			servers := lb.GetServers()
			group := "default"
			for _, sg := range cfg.GetServerGroups() {
				if sg.GetId() == l.GetServerGroup() {
					servers, group = sg.GetServers(), sg.GetId()
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s/%d\t%s\t%s: %s\n", lb.GetId(), lb.GetAddress(), l.GetProtocol(), l.GetPort(),
				l.GetScheduler(), group, serverList(servers, l.GetBackendPort()))
		}
		if len(lb.GetListeners()) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\tdefault: %s\n", lb.GetId(), lb.GetAddress(), serverList(lb.GetServers(), 0))
		}
	}
	tw.Flush()
	if len(cfg.GetCertificates()) > 0 {
		fmt.Fprintf(w, "\ncertificates: ")
		var ids []string
		for _, c := range cfg.GetCertificates() {
			ids = append(ids, c.GetId()+" ("+c.GetType().String()+")")
		}
		fmt.Fprintln(w, strings.Join(ids, ", "))
	}
	if len(cfg.GetSnatPools()) > 0 {
		fmt.Fprintf(w, "snat pools: %d, eips: %d\n", len(cfg.GetSnatPools()), len(cfg.GetEips()))
	}
}

func serverList(servers []*xlbv1.Server, backendPort uint32) string {
	parts := make([]string, 0, len(servers))
	for _, s := range servers {
		port := s.GetPort()
		if port == 0 {
			port = backendPort
		}
		p := s.GetAddress()
		if port != 0 {
			p = fmt.Sprintf("%s:%d", p, port)
		}
		if s.Weight != nil {
			p += fmt.Sprintf("*%d", s.GetWeight())
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

func printVersions(w io.Writer, r *xlbv1.ListVersionsResponse) {
	tw := table(w)
	fmt.Fprintln(tw, "VERSION\tCREATED\tSOURCE\tCOMMENT")
	for _, v := range r.GetVersions() {
		mark := ""
		if v.GetVersion() == r.GetCurrent() {
			mark = " *"
		}
		fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\n", v.GetVersion(), mark, ts(v.GetCreated()), v.GetSource(), v.GetComment())
	}
	tw.Flush()
}

func printHealthEvent(w io.Writer, ev *xlbv1.HealthEvent) {
	from := ev.GetOldState().String()
	if ev.GetInitial() {
		from = "-"
	}
	reason := ev.GetReason()
	if ev.GetInitial() {
		reason = "current state"
	}
	if ev.GetLastError() != "" && ev.GetNewState() == xlbv1.HealthState_down {
		reason += ": " + ev.GetLastError()
	}
	fmt.Fprintf(w, "%-25s %-22s %-6s %-6s %s (%s)\n", ts(ev.GetTime()), ev.GetBackend(), from, ev.GetNewState(), reason, ev.GetCheck())
}

// The counters shown in the tables; -o json has them all.
var (
	listenerCols = []struct{ head, key string }{
		{"CONNS", "xlb_l4_connections_total"},
		{"ACTIVE", "xlb_l4_active_connections"},
		{"XDP FLOWS", "xlb_xdp_new_flows_total"},
		{"HTTP REQS", "xlb_http_requests_total"},
		{"BYTES IN", "bytes_in"},
		{"BYTES OUT", "bytes_out"},
	}
)

// sumPrefix adds the counters named prefix, whatever their other labels.
func sumPrefix(m map[string]float64, prefix string) float64 {
	var v float64
	for k, x := range m {
		if k == prefix || strings.HasPrefix(k, prefix+"{") {
			v += x
		}
	}
	return v
}

func bytesDir(m map[string]float64, dir string) float64 {
	var v float64
	for k, x := range m {
		if strings.Contains(k, "bytes_total") && strings.Contains(k, `direction="`+dir+`"`) {
			v += x
		}
	}
	return v
}

func listenerRow(m map[string]float64) string {
	cells := make([]string, len(listenerCols))
	for i, c := range listenerCols {
		var v float64
		switch c.key {
		case "bytes_in":
			v = bytesDir(m, "in")
		case "bytes_out":
			v = bytesDir(m, "out")
		default:
			v = sumPrefix(m, c.key)
		}
		cells[i] = fmt.Sprintf("%.0f", v)
	}
	return strings.Join(cells, "\t")
}

func printStats(w io.Writer, r *xlbv1.GetStatsResponse) {
	tw := table(w)
	heads := make([]string, len(listenerCols))
	for i, c := range listenerCols {
		heads[i] = c.head
	}
	fmt.Fprintf(tw, "LISTENER\t%s\n", strings.Join(heads, "\t"))
	for _, lb := range r.GetLoadBalancers() {
		for _, l := range lb.GetListeners() {
			fmt.Fprintf(tw, "%s\t%s\n", l.GetName(), listenerRow(l.GetCounters()))
		}
		if len(lb.GetListeners()) > 1 {
			fmt.Fprintf(tw, "%s (all)\t%s\n", lb.GetId(), listenerRow(lb.GetCounters()))
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = table(w)
	fmt.Fprintln(tw, "BACKEND\tHEALTH\tSTATE\tACTIVE\tCOUNTERS")
	for _, b := range r.GetBackends() {
		keys := make([]string, 0, len(b.GetCounters()))
		for k := range b.GetCounters() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			if v := b.GetCounters()[k]; v != 0 {
				parts = append(parts, fmt.Sprintf("%s=%.0f", strings.TrimPrefix(k, "xlb_"), v))
			}
		}
		health, state := b.GetHealth().String(), b.GetAdmin().String()
		if b.GetHealth() == xlbv1.HealthState_HEALTH_STATE_UNSPECIFIED {
			health, state = "-", "-" // counters of a backend no pool uses now
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", b.GetBackend(), health, state, b.GetActive(), strings.Join(parts, " "))
	}
	tw.Flush()
}

func printSnat(w io.Writer, r *xlbv1.GetSnatStatusResponse) {
	if r.GetMessage() != "" {
		fmt.Fprintln(w, r.GetMessage())
	}
	for _, p := range r.GetPools() {
		fmt.Fprintf(w, "pool %s\n", p.GetId())
		tw := table(w)
		fmt.Fprintln(tw, "  PUBLIC IP\tPORTS IN USE\tPORTS")
		for _, ip := range p.GetPublicIps() {
			fmt.Fprintf(tw, "  %s\t%d\t%d\n", ip.GetIp(), ip.GetPortsInUse(), ip.GetPortsTotal())
		}
		tw.Flush()
		tw = table(w)
		fmt.Fprintln(tw, "  HOST\tPORTS IN USE")
		for _, h := range p.GetHosts() {
			fmt.Fprintf(tw, "  %s\t%d\n", h.GetHost(), h.GetPortsInUse())
		}
		tw.Flush()
	}
}

func printCerts(w io.Writer, list []*xlbv1.CertificateInfo) {
	tw := table(w)
	fmt.Fprintln(tw, "ID\tTYPE\tSUBJECT\tNAMES\tEXPIRES\tKEY\tUSED BY")
	for _, c := range list {
		key := "no"
		if c.GetHasKey() {
			key = "yes (not shown)"
		}
		used := strings.Join(c.GetUsedBy(), ",")
		if used == "" {
			used = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.GetId(), c.GetType(), c.GetSubject(),
			strings.Join(c.GetDnsNames(), ","), ts(c.GetNotAfter()), key, used)
	}
	tw.Flush()
}
