package config_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/config"
)

func TestDecodeDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"2s":     2 * time.Second,
		"5m":     5 * time.Minute,
		"1h30m":  90 * time.Minute,
		"500ms":  500 * time.Millisecond,
		"1.5s":   1500 * time.Millisecond,
		"300s":   300 * time.Second, // protojson's own form is fine too
		"0s":     0,
		"1h0m1s": time.Hour + time.Second,
	} {
		cfg, err := config.Decode([]byte("node: {conntrack: {udp_timeout: " + in + "}}"))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := cfg.Node.Conntrack.UdpTimeout.AsDuration(); got != want {
			t.Errorf("%s decoded as %v, want %v", in, got, want)
		}
	}
}

func TestDecodeValues(t *testing.T) {
	cfg, err := config.Decode([]byte(`
node: {xdp_mode: off, interfaces: [eth0, "off"]}
load_balancers:
  - id: lb
    address: 203.0.113.10
    tags: {env: prod, "2024": 1.10}
    limits: {max_connections: 18446744073709551615, new_connections_per_second: 0x10}
    listeners:
      - protocol: https
        port: 443
        http3: true
        health_check: {type: http, codes: [http_2xx, http_5xx], healthy_threshold: 0}
        tls: {certificates: [www], min_version: 1.3}
      - protocol: tcp
        port: 80
        health_check:
        persistence: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	lb := cfg.LoadBalancers[0]
	https, tcp := lb.Listeners[0], lb.Listeners[1]
	checks := []struct {
		what      string
		got, want any
	}{
		{"xdp_mode", cfg.Node.XdpMode, xlbv1.XdpMode_off},
		{"interfaces", strings.Join(cfg.Node.Interfaces, ","), "eth0,off"},
		{"tag written as a number", lb.Tags["2024"], "1.10"},
		{"uint64 max", lb.Limits.MaxConnections, uint64(1<<64 - 1)},
		{"hex", lb.Limits.NewConnectionsPerSecond, uint64(16)},
		{"protocol", https.Protocol, xlbv1.Protocol_https},
		{"http3", https.Http3, true},
		{"codes", len(https.HealthCheck.Codes), 2},
		{"code", https.HealthCheck.Codes[1], xlbv1.HttpCode_http_5xx},
		{"explicit 0 threshold kept", https.HealthCheck.HealthyThreshold != nil && *https.HealthCheck.HealthyThreshold == 0, true},
		{"min_version written as a number", https.Tls.MinVersion, "1.3"},
		{"null block is unset", tcp.HealthCheck == nil, true},
		{"empty block is set", tcp.Persistence != nil, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestDecodeAliasesAndMerges(t *testing.T) {
	cfg, err := config.Decode([]byte(`
server_groups:
  - {id: a, servers: &pool [{address: 10.0.0.1}, {address: 10.0.0.2}]}
  - {id: b, servers: *pool}
load_balancers:
  - &lb
    id: x
    address: 203.0.113.10
    listeners: [{protocol: tcp, port: 80, scheduler: rr}]
  - <<: *lb
    id: y
    address: 203.0.113.11
`))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cfg.ServerGroups[1].Servers); n != 2 {
		t.Errorf("group b has %d servers through the alias, want 2", n)
	}
	y := cfg.LoadBalancers[1]
	if y.Id != "y" || y.Address != "203.0.113.11" || len(y.Listeners) != 1 || y.Listeners[0].Scheduler != xlbv1.Scheduler_rr {
		t.Errorf("merged load balancer = %v", y)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
		line             int
	}{
		{"syntax", "node:\n\tstate_dir: /a\n", "YAML syntax error: found character that cannot start any token", 2},
		{"syntax in a mapping", "node: {}\nload_balancers: 1\n  x: 1\n", "YAML syntax error: mapping values are not allowed", 3},
		{"second document", "node: {}\n---\nnode: {}\n", "a second YAML document", 2},
		{"not a mapping", "- a\n- b\n", "mapping expected, got a list", 1},
		{"duplicate key", "node:\n  state_dir: /a\n  state_dir: /b\n", "node.state_dir: duplicate key: first set on line 2", 3},
		{"duplicate map key", "load_balancers: [{id: a, tags: {x: 1, x: 2}}]\n", `load_balancers[0].tags["x"]: duplicate key`, 1},
		{"camelCase name", "node: {stateDir: /a}\n", "node.stateDir: unknown field (line 1); did you mean state_dir?", 1},
		{"no close name", "node: {colour: red}\n", "node.colour: unknown field (line 1)", 1},
		{"enum hint", "node: {xdp_mode: Native}\n", `"Native" is not one of auto, native, generic, off (line 1); did you mean native?`, 1},
		{"uint64 overflow", "load_balancers: [{limits: {max_connections: 18446744073709551616}}]\n", "18446744073709551616 is out of range 0..18446744073709551615", 1},
		{"uint32 overflow", "load_balancers: [{bandwidth_mbps: 4294967296}]\n", "4294967296 is out of range 0..4294967295", 1},
		{"float for an integer", "load_balancers: [{bandwidth_mbps: 1.5}]\n", "whole number expected, got the number 1.5", 1},
		{"quoted number", "load_balancers: [{bandwidth_mbps: \"100\"}]\n", "write numbers without quotes", 1},
		{"mapping for a string", "load_balancers: [{id: {a: b}}]\n", "text expected, got a mapping", 1},
		{"duration as mapping", "node: {conntrack: {udp_timeout: {seconds: 5}}}\n", "duration expected, got a mapping", 1},
		{"empty list item", "node:\n  interfaces:\n    -\n", "node.interfaces[0]: empty list item", 3},
		{"tag value missing", "load_balancers: [{tags: {env: }}]\n", `tags["env"]: a value is required`, 1},
		{"enum by number", "load_balancers: [{listeners: [{protocol: 1}]}]\n", `"1" is not one of tcp`, 1},
		{"unspecified enum value", "load_balancers: [{listeners: [{protocol: PROTOCOL_UNSPECIFIED}]}]\n", "is not one of tcp, udp, http, https", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Decode([]byte(tt.yaml))
			errs := fieldErrors(t, err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error does not say %q:\n%v", tt.want, err)
			}
			if errs[0].Line != tt.line {
				t.Errorf("line %d, want %d: %v", errs[0].Line, tt.line, errs[0])
			}
			if strings.Contains(err.Error(), "UNSPECIFIED") && tt.name != "unspecified enum value" {
				t.Errorf("the message offers the unset enum value: %v", err)
			}
		})
	}
}

// An alias bomb is refused quickly instead of expanded.
func TestDecodeAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("server_groups: [{id: g}]\nload_balancers:\n  - &lb {id: a, address: 203.0.113.10, listeners: [&l {protocol: http, port: 80, rules: [&r {path: /, server_group: g}")
	b.WriteString(strings.Repeat(", *r", 999))
	b.WriteString("]}")
	b.WriteString(strings.Repeat(", *l", 999))
	b.WriteString("]}\n")
	b.WriteString(strings.Repeat("  - *lb\n", 999))
	start := time.Now()
	_, err := config.Decode([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too many aliases") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, doc := range []string{"", "\n\n", "# comment\n", "---\n", "~\n", "null\n"} {
		cfg, err := config.Decode([]byte(doc))
		if err != nil {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		if !proto.Equal(cfg, &xlbv1.Config{}) {
			t.Errorf("%q decoded as %v", doc, cfg)
		}
	}
}

func TestFieldErrorFormat(t *testing.T) {
	tests := []struct {
		e    config.FieldError
		want string
	}{
		{config.FieldError{Path: "a.b[0]", Msg: "bad"}, "a.b[0]: bad"},
		{config.FieldError{Path: "a", Msg: "unknown field", Line: 14, Hint: "did you mean b?"}, "a: unknown field (line 14); did you mean b?"},
		{config.FieldError{Msg: "YAML syntax error: x", Line: 2}, "YAML syntax error: x (line 2)"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	errs := config.Errors{&tests[0].e, &tests[1].e}
	if got, want := errs.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
}
