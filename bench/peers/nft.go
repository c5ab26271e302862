package peers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// TablePrefix starts the name of every nftables table the benchmarks create.
const TablePrefix = "xlbbench_"

// NewTableName returns a fresh table name, "xlbbench_<8 hex>".
func NewTableName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return TablePrefix + hex.EncodeToString(b[:])
}

// DNATRule balances one VIP port over backends by rewriting the destination.
type DNATRule struct {
	Proto    string // "tcp" or "udp"
	VIP      string
	Port     int
	Backends []Backend
	// Pick is nftables' numgen mode: "inc" (round robin, the default) or
	// "random".
	Pick string
}

// DNAT is a DNAT load-balancing table.
type DNAT struct {
	Table string
	Rules []DNATRule
}

// RenderDNAT returns the nft script for d.
func RenderDNAT(d DNAT) ([]byte, error) {
	var errs []error
	if !strings.HasPrefix(d.Table, TablePrefix) {
		errs = append(errs, fmt.Errorf("table %q does not start with %s", d.Table, TablePrefix))
	}
	if len(d.Rules) == 0 {
		errs = append(errs, errors.New("no rules"))
	}
	for i := range d.Rules {
		r := &d.Rules[i]
		if r.Pick == "" {
			r.Pick = "inc"
		}
		if r.Proto != "tcp" && r.Proto != "udp" {
			errs = append(errs, fmt.Errorf("rule %d: proto %q, want tcp or udp", i, r.Proto))
		}
		if r.Pick != "inc" && r.Pick != "random" {
			errs = append(errs, fmt.Errorf("rule %d: pick %q, want inc or random", i, r.Pick))
		}
		if _, err := netip.ParseAddr(r.VIP); err != nil {
			errs = append(errs, fmt.Errorf("rule %d: vip: %w", i, err))
		}
		if len(r.Backends) == 0 {
			errs = append(errs, fmt.Errorf("rule %d: no backends", i))
		}
		for _, b := range r.Backends {
			if _, err := netip.ParseAddr(b.IP); err != nil {
				errs = append(errs, fmt.Errorf("rule %d: backend: %w", i, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("nft dnat: %w", err)
	}
	return render("nft-dnat.nft.tmpl", d)
}

// Masquerade is a source-NAT table: traffic from Sources leaving OutIface
// gets the interface's address, or one of To ("a.b.c.d" or a range
// "a.b.c.d-a.b.c.e") when set.
type Masquerade struct {
	Table    string
	Sources  []string // CIDRs
	OutIface string
	To       string
}

// RenderMasquerade returns the nft script for m.
func RenderMasquerade(m Masquerade) ([]byte, error) {
	var errs []error
	if !strings.HasPrefix(m.Table, TablePrefix) {
		errs = append(errs, fmt.Errorf("table %q does not start with %s", m.Table, TablePrefix))
	}
	if len(m.Sources) == 0 {
		errs = append(errs, errors.New("no sources"))
	}
	for _, s := range m.Sources {
		if _, err := netip.ParsePrefix(s); err != nil {
			errs = append(errs, fmt.Errorf("source: %w", err))
		}
	}
	if m.OutIface == "" {
		errs = append(errs, errors.New("no outgoing interface"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("nft masquerade: %w", err)
	}
	return render("nft-masquerade.nft.tmpl", struct {
		Masquerade
		Sources string
	}{m, "{ " + strings.Join(m.Sources, ", ") + " }"})
}

// Table is an nftables table installed in a lab host.
type Table struct {
	Name string
	lab  Lab
	host string
}

// InstallTable loads script (which must define the table name) into host's
// namespace. The table dies with the namespace; Delete removes it earlier.
func InstallTable(ctx context.Context, lab Lab, host, name string, script []byte) (*Table, error) {
	cmd := lab.Command(ctx, host, "nft", "-f", "-")
	cmd.Stdin = bytes.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nft -f in %s: %w: %s", host, err, strings.TrimSpace(string(out)))
	}
	return &Table{Name: name, lab: lab, host: host}, nil
}

// Delete removes the table; a table that is already gone is not an error.
func (t *Table) Delete(ctx context.Context) error {
	names, err := ListTables(ctx, t.lab, t.host)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == t.Name {
			if _, err := t.lab.Run(ctx, t.host, "nft", "delete", "table", "ip", t.Name); err != nil {
				return fmt.Errorf("deleting nft table %s: %w", t.Name, err)
			}
		}
	}
	return nil
}

// ListTables returns the names of the nftables tables in host.
func ListTables(ctx context.Context, lab Lab, host string) ([]string, error) {
	out, err := lab.Run(ctx, host, "nft", "-j", "list", "tables")
	if err != nil {
		return nil, err
	}
	return parseTables(out)
}

func parseTables(b []byte) ([]string, error) {
	var doc struct {
		Nftables []struct {
			Table *struct {
				Name string `json:"name"`
			} `json:"table"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("nft -j list tables: %w", err)
	}
	var names []string
	for _, e := range doc.Nftables {
		if e.Table != nil {
			names = append(names, e.Table.Name)
		}
	}
	return names, nil
}

// ConntrackSysctls returns the gateway's conntrack settings for the
// nftables peer. A connection-rate benchmark opens tens of thousands of
// flows a second; with the default 120 s TIME_WAIT the conntrack table
// (whose limit is host-wide) would fill within a minute and drop new flows,
// measuring the table size instead of the data path. A NAT gateway under
// such load is tuned the same way.
func ConntrackSysctls() map[string]string {
	return map[string]string{
		"net.netfilter.nf_conntrack_tcp_timeout_time_wait": "5",
		"net.netfilter.nf_conntrack_tcp_timeout_close":     "5",
	}
}

// TuneConntrack applies ConntrackSysctls in host (conntrack sysctls are per
// network namespace). Call it after InstallTable, which loads conntrack.
func TuneConntrack(ctx context.Context, lab Lab, host string) error {
	for k, v := range ConntrackSysctls() {
		if _, err := lab.Run(ctx, host, "sysctl", "-q", "-w", k+"="+v); err != nil {
			return fmt.Errorf("conntrack tuning: %w", err)
		}
	}
	return nil
}
