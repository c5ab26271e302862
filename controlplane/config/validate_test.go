package config_test

import (
	"fmt"
	"strings"
	"testing"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/config"
)

// lbYAML is one load balancer with the given listeners (YAML list items).
func lbYAML(listeners string) string {
	return "load_balancers:\n  - id: lb\n    address: 203.0.113.10\n    listeners:\n" + listeners
}

func repeatLines(n int, format string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, format, i)
	}
	return b.String()
}

func TestBadConfigs(t *testing.T) {
	dir := certDir(t)
	tests := []struct {
		name string
		yaml string
		path string // the exact field path reported
		want string // the rule, as the message says it
		line int    // when not 0, the line reported
	}{
		// listeners
		{"duplicate port", lbYAML(`
      - {protocol: http, port: 80}
      - {protocol: https, port: 80, tls: {certificates: [www]}}
`) + certsYAML, "load_balancers[0].listeners[1].port", "80 is already used by listeners[0]", 7},
		{"udp port taken by http3", certsYAML + lbYAML(`
      - {protocol: https, port: 443, http3: true, tls: {certificates: [www]}}
      - {protocol: udp, port: 443}
`), "load_balancers[0].listeners[1].port", "443/udp is already used by listeners[0]", 0},
		{"port 0", lbYAML("      - {protocol: tcp, port: 0, backend_port: 80}\n"),
			"load_balancers[0].listeners[0].port", "0 is out of range 1..65535", 0},
		{"port 65536", lbYAML("      - {protocol: tcp, port: 65536}\n"),
			"load_balancers[0].listeners[0].port", "65536 is out of range 1..65535", 0},
		{"backend port 70000", lbYAML("      - {protocol: tcp, port: 80, backend_port: 70000}\n"),
			"load_balancers[0].listeners[0].backend_port", "70000 is out of range 1..65535", 0},
		{"51 listeners", lbYAML(repeatLines(51, "      - {protocol: tcp, port: %d}\n")),
			"load_balancers[0].listeners", "51 listeners; a load balancer has at most 50", 4},
		{"protocol missing", lbYAML("      - {port: 80}\n"),
			"load_balancers[0].listeners[0].protocol", "required: tcp, udp, http or https", 0},
		{"maglev on http", lbYAML("      - {protocol: http, port: 80, scheduler: maglev}\n"),
			"load_balancers[0].listeners[0].scheduler", "maglev is for tcp and udp listeners only", 0},
		{"forward_mode on http", lbYAML("      - {protocol: http, port: 80, forward_mode: fullnat}\n"),
			"load_balancers[0].listeners[0].forward_mode", "only tcp and udp listeners have a forward mode", 0},
		{"headers on tcp", lbYAML("      - {protocol: tcp, port: 80, headers: {x_forwarded_for: true}}\n"),
			"load_balancers[0].listeners[0].headers", "only http and https listeners add headers", 0},
		{"gzip on udp", lbYAML("      - {protocol: udp, port: 53, gzip: true}\n"),
			"load_balancers[0].listeners[0].gzip", "only http and https listeners compress", 0},
		{"request timeout on tcp", lbYAML("      - {protocol: tcp, port: 80, timeouts: {request: 5s}}\n"),
			"load_balancers[0].listeners[0].timeouts.request", "only http and https listeners have a request timeout", 0},
		{"connect timeout on udp", lbYAML("      - {protocol: udp, port: 53, timeouts: {connect: 5s}}\n"),
			"load_balancers[0].listeners[0].timeouts.connect", "no connection setup", 0},
		{"udp sessions over the cap", lbYAML("      - {protocol: udp, port: 53, max_sessions: 100001}\n"),
			"load_balancers[0].listeners[0].max_sessions", "100001 is out of range 1..100000", 0},
		{"max_sessions on tcp", lbYAML("      - {protocol: tcp, port: 53, max_sessions: 10}\n"),
			"load_balancers[0].listeners[0].max_sessions", "only udp listeners have a session cap", 0},
		{"idle timeout 0s", lbYAML("      - {protocol: tcp, port: 80, timeouts: {idle: 0s}}\n"),
			"load_balancers[0].listeners[0].timeouts.idle", "0s is out of range 1s..24h", 0},

		// servers and groups
		{"weight 101", `
server_groups:
  - id: web
    servers: [{address: 10.0.0.1, port: 80, weight: 101}]
`, "server_groups[0].servers[0].weight", "101 is out of range 0..100", 0},
		{"bad server address", `
load_balancers:
  - {id: lb, address: 203.0.113.10, servers: [{address: 10.0.0.300}]}
`, "load_balancers[0].servers[0].address", `"10.0.0.300" is not an IP address`, 0},
		{"server port 65536", `
server_groups: [{id: web, servers: [{address: 10.0.0.1, port: 65536}]}]
`, "server_groups[0].servers[0].port", "65536 is out of range 0..65535", 0},
		{"duplicate server", `
server_groups:
  - id: web
    servers: [{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}, {address: 10.0.0.1, port: 80}]
`, "server_groups[0].servers[2]", "10.0.0.1:80 is already listed as servers[0]", 0},
		{"duplicate default pool server", `
load_balancers:
  - {id: lb, address: 203.0.113.10, servers: [{address: "2001:db8::1"}, {address: "2001:DB8::1"}]}
`, "load_balancers[0].servers[1]", "is already listed as servers[0]", 0},
		{"unknown server group", lbYAML("      - {protocol: tcp, port: 80, server_group: nope}\n"),
			"load_balancers[0].listeners[0].server_group", `"nope" is not defined in server_groups`, 0},
		{"master_slave on http", `
server_groups:
  - id: db
    type: master_slave
    servers: [{address: 10.0.0.1, role: master}, {address: 10.0.0.2, role: slave}]
` + lbYAML("      - {protocol: http, port: 80, server_group: db}\n"),
			"load_balancers[0].listeners[0].server_group", `"db" is a master_slave group; those serve tcp and udp listeners only`, 0},
		{"master_slave with 3 servers", `
server_groups:
  - id: db
    type: master_slave
    servers:
      - {address: 10.0.0.1, role: master}
      - {address: 10.0.0.2, role: slave}
      - {address: 10.0.0.3, role: slave}
`, "server_groups[0].servers", "exactly 2 servers, a master and a slave; found 3", 5},
		{"master_slave with two masters", `
server_groups:
  - {id: db, type: master_slave, servers: [{address: 10.0.0.1, role: master}, {address: 10.0.0.2, role: master}]}
`, "server_groups[0].servers", "one master and one slave; found 2 master(s) and 0 slave(s)", 0},
		{"role in a vserver group", `
server_groups: [{id: web, servers: [{address: 10.0.0.1, role: master}]}]
`, "server_groups[0].servers[0].role", "only servers of master_slave groups have a role", 0},
		{"bad group id", `
server_groups: [{id: "web group", servers: []}]
`, "server_groups[0].id", `"web group" is not a valid id`, 0},

		// persistence
		{"insert_cookie on tcp", lbYAML("      - {protocol: tcp, port: 80, persistence: {type: insert_cookie}}\n"),
			"load_balancers[0].listeners[0].persistence.type", "insert_cookie is not available on tcp listeners (tcp: none, source_ip)", 0},
		{"source_ip on udp", lbYAML("      - {protocol: udp, port: 53, persistence: {type: source_ip}}\n"),
			"load_balancers[0].listeners[0].persistence.type", "source_ip is not available on udp listeners (udp: none)", 0},
		{"rewrite_cookie without cookie", lbYAML("      - {protocol: http, port: 80, persistence: {type: rewrite_cookie}}\n"),
			"load_balancers[0].listeners[0].persistence.cookie", "required for rewrite_cookie", 0},
		{"cookie name with a space", lbYAML("      - {protocol: http, port: 80, persistence: {type: insert_cookie, cookie: my cookie}}\n"),
			"load_balancers[0].listeners[0].persistence.cookie", `"my cookie" is not a valid cookie name`, 0},
		{"source_ip timeout 3601s", lbYAML("      - {protocol: tcp, port: 80, persistence: {type: source_ip, timeout: 3601s}}\n"),
			"load_balancers[0].listeners[0].persistence.timeout", "3601s is out of range 1s..1h", 0},
		{"insert_cookie timeout 25h", lbYAML("      - {protocol: http, port: 80, persistence: {type: insert_cookie, timeout: 25h}}\n"),
			"load_balancers[0].listeners[0].persistence.timeout", "90000s is out of range 1s..24h", 0},

		// health checks
		{"interval 0s", lbYAML("      - {protocol: tcp, port: 80, health_check: {interval: 0s}}\n"),
			"load_balancers[0].listeners[0].health_check.interval", "0s is out of range 1s..50s", 0},
		{"interval 51s", lbYAML("      - {protocol: tcp, port: 80, health_check: {interval: 51s}}\n"),
			"load_balancers[0].listeners[0].health_check.interval", "51s is out of range 1s..50s", 0},
		{"timeout 301s", lbYAML("      - {protocol: tcp, port: 80, health_check: {timeout: 301s}}\n"),
			"load_balancers[0].listeners[0].health_check.timeout", "301s is out of range 1s..300s", 0},
		{"threshold 11", lbYAML("      - {protocol: tcp, port: 80, health_check: {healthy_threshold: 11}}\n"),
			"load_balancers[0].listeners[0].health_check.healthy_threshold", "11 is out of range 2..10", 0},
		{"threshold 1", lbYAML("      - {protocol: tcp, port: 80, health_check: {unhealthy_threshold: 1}}\n"),
			"load_balancers[0].listeners[0].health_check.unhealthy_threshold", "1 is out of range 2..10", 0},
		{"http check on udp listener", lbYAML("      - {protocol: udp, port: 53, health_check: {type: http}}\n"),
			"load_balancers[0].listeners[0].health_check.type", "http checks are for tcp, http and https listeners", 0},
		{"udp check on tcp listener", lbYAML("      - {protocol: tcp, port: 53, health_check: {type: udp, request: a, response: b}}\n"),
			"load_balancers[0].listeners[0].health_check.type", "udp checks are for udp listeners only", 0},
		{"udp check without response", lbYAML("      - {protocol: udp, port: 53, health_check: {type: udp, request: ping}}\n"),
			"load_balancers[0].listeners[0].health_check.response", "required for udp checks", 0},
		{"http check path without slash", lbYAML("      - {protocol: http, port: 80, health_check: {type: http, path: health}}\n"),
			"load_balancers[0].listeners[0].health_check.path", `"health" must start with "/"`, 0},
		{"path on a tcp check", lbYAML("      - {protocol: tcp, port: 80, health_check: {type: tcp, path: /x}}\n"),
			"load_balancers[0].listeners[0].health_check.path", "only http checks use path", 0},

		// access control
		{"301 ACL entries", lbYAML("      - protocol: tcp\n        port: 80\n        acl:\n          mode: deny\n          cidrs:\n" +
			repeatLines(301, "            - 10.0.%d.0/24\n")),
			"load_balancers[0].listeners[0].acl.cidrs", "301 entries; an access control list has at most 300", 0},
		{"duplicate ACL entry", lbYAML("      - {protocol: tcp, port: 80, acl: {mode: allow, cidrs: [10.0.0.1, 10.0.0.1/32]}}\n"),
			"load_balancers[0].listeners[0].acl.cidrs[1]", `"10.0.0.1/32" duplicates cidrs[0] ("10.0.0.1")`, 0},
		{"bad CIDR", lbYAML("      - {protocol: tcp, port: 80, acl: {mode: allow, cidrs: [10.0.0.0/33]}}\n"),
			"load_balancers[0].listeners[0].acl.cidrs[0]", `"10.0.0.0/33" is not an IP address or CIDR`, 0},
		{"CIDR with host bits", lbYAML("      - {protocol: tcp, port: 80, acl: {mode: allow, cidrs: [10.0.0.5/24]}}\n"),
			"load_balancers[0].listeners[0].acl.cidrs[0]", "has host bits set; write 10.0.0.0/24", 0},
		{"ACL without mode", lbYAML("      - {protocol: tcp, port: 80, acl: {cidrs: [10.0.0.0/8]}}\n"),
			"load_balancers[0].listeners[0].acl.mode", "required: allow or deny", 0},

		// rules
		{"rule on tcp listener", `
server_groups: [{id: web}]
` + lbYAML("      - {protocol: tcp, port: 80, rules: [{domain: a.example.com, server_group: web}]}\n"),
			"load_balancers[0].listeners[0].rules", "only http and https listeners have forwarding rules", 0},
		{"rule path without slash", `
server_groups: [{id: web}]
` + lbYAML("      - {protocol: http, port: 80, rules: [{path: api, server_group: web}]}\n"),
			"load_balancers[0].listeners[0].rules[0].path", `"api" must start with "/"`, 0},
		{"duplicate rule", `
server_groups: [{id: web}, {id: api}]
` + lbYAML(`      - protocol: http
        port: 80
        rules:
          - {domain: www.example.com, path: /api, server_group: api}
          - {domain: WWW.example.com, path: /api, server_group: web}
`), "load_balancers[0].listeners[0].rules[1]", `are already used by rules[0]`, 0},
		{"rule without domain or path", `
server_groups: [{id: web}]
` + lbYAML("      - {protocol: http, port: 80, rules: [{server_group: web}]}\n"),
			"load_balancers[0].listeners[0].rules[0]", "a rule needs a domain, a path or both", 0},
		{"wildcard inside a domain", `
server_groups: [{id: web}]
` + lbYAML("      - {protocol: http, port: 80, rules: [{domain: \"www.*.com\", server_group: web}]}\n"),
			"load_balancers[0].listeners[0].rules[0].domain", `a wildcard is only a leading "*." label`, 0},
		{"rule to an unknown group", lbYAML("      - {protocol: http, port: 80, rules: [{path: /, server_group: api}]}\n"),
			"load_balancers[0].listeners[0].rules[0].server_group", `"api" is not defined in server_groups`, 0},
		{"41 rules", `
server_groups: [{id: web}]
` + lbYAML("      - protocol: http\n        port: 80\n        rules:\n"+repeatLines(41, "          - {path: /p%d, server_group: web}\n")),
			"load_balancers[0].listeners[0].rules", "41 rules; a listener has at most 40", 0},

		// tls and certificates
		{"https without certificate", lbYAML("      - {protocol: https, port: 443}\n"),
			"load_balancers[0].listeners[0].tls", "required for an https listener", 0},
		{"https with an empty certificate list", lbYAML("      - {protocol: https, port: 443, tls: {certificates: []}}\n"),
			"load_balancers[0].listeners[0].tls.certificates", "at least one server certificate", 0},
		{"tls on http listener", certsYAML + lbYAML("      - {protocol: http, port: 80, tls: {certificates: [www]}}\n"),
			"load_balancers[0].listeners[0].tls", "only https listeners have tls", 0},
		{"CA cert used as server cert", certsYAML + lbYAML("      - {protocol: https, port: 443, tls: {certificates: [clients]}}\n"),
			"load_balancers[0].listeners[0].tls.certificates[0]", `"clients" is a ca certificate, not a server certificate`, 0},
		{"server cert used as CA", certsYAML + lbYAML("      - {protocol: https, port: 443, tls: {certificates: [www], ca: www}}\n"),
			"load_balancers[0].listeners[0].tls.ca", `"www" is a server certificate, not a ca certificate`, 0},
		{"mutual without ca", certsYAML + lbYAML("      - {protocol: https, port: 443, tls: {certificates: [www], mutual: true}}\n"),
			"load_balancers[0].listeners[0].tls.mutual", "requires ca", 0},
		{"tls 1.1", certsYAML + lbYAML("      - {protocol: https, port: 443, tls: {certificates: [www], min_version: 1.1}}\n"),
			"load_balancers[0].listeners[0].tls.min_version", `"1.1" is not "1.2" or "1.3"`, 0},
		{"http3 on http", lbYAML("      - {protocol: http, port: 80, http3: true}\n"),
			"load_balancers[0].listeners[0].http3", "only https listeners serve HTTP/3", 0},
		{"redirect without https listener", lbYAML("      - {protocol: http, port: 80, redirect_https: {}}\n"),
			"load_balancers[0].listeners[0].redirect_https.port", "no https listener of this load balancer listens on 443", 0},
		{"encrypted key", `
certificates: [{id: www, type: server, cert_file: server.pem, key_file: encrypted-key.pem}]
`, "certificates[0].key_file", "private key is encrypted; xlb needs it unencrypted: convert it with `openssl pkey -in key.pem -out key-plain.pem`", 0},
		{"key not matching", `
certificates: [{id: www, type: server, cert_file: server.pem, key_file: other-key.pem}]
`, "certificates[0].key_file", "private key does not match the certificate", 0},
		{"missing cert file", `
certificates:
  - id: www
    type: server
    cert_file: missing.pem
    key_file: server-key.pem
`, "certificates[0].cert_file", "cannot read", 5},
		{"inline PEM that is not PEM", `
certificates: [{id: www, type: server, cert_pem: "hello", key_file: server-key.pem}]
`, "certificates[0].cert_pem", "not PEM", 0},
		{"server certificate without key", `
certificates: [{id: www, type: server, cert_file: server.pem}]
`, "certificates[0].key_file", "required for a server certificate", 0},
		{"ca with a private key", `
certificates: [{id: ca, type: ca, cert_file: ca.pem, key_file: server-key.pem}]
`, "certificates[0].key_file", "never its private key", 0},
		{"leaf as ca", `
certificates: [{id: ca, type: ca, cert_file: server.pem}]
`, "certificates[0].cert_file", "is not a CA certificate", 0},
		{"certificate type missing", `
certificates: [{id: www, cert_file: server.pem, key_file: server-key.pem}]
`, "certificates[0].type", "required: server or ca", 0},
		{"file and inline PEM", `
certificates: [{id: www, type: server, cert_file: server.pem, cert_pem: x, key_file: server-key.pem}]
`, "certificates[0].cert_file", "set cert_file or cert_pem, not both", 0},

		// load balancers
		{"invalid VIP", "load_balancers: [{id: lb, address: 203.0.113.300}]\n",
			"load_balancers[0].address", `"203.0.113.300" is not an IP address`, 1},
		{"VIP missing", "load_balancers: [{id: lb}]\n",
			"load_balancers[0].address", "required", 0},
		{"multicast VIP", "load_balancers: [{id: lb, address: 224.0.0.1}]\n",
			"load_balancers[0].address", "not a unicast address", 0},
		{"duplicate lb id", "load_balancers: [{id: lb, address: 203.0.113.10}, {id: lb, address: 203.0.113.11}]\n",
			"load_balancers[1].id", `"lb" is already used by load_balancers[0]`, 0},
		{"duplicate VIP", "load_balancers: [{id: a, address: 203.0.113.10}, {id: b, address: 203.0.113.10}]\n",
			"load_balancers[1].address", "203.0.113.10 is already used by load_balancers[0]", 0},
		{"11 tags", "load_balancers:\n  - id: lb\n    address: 203.0.113.10\n    tags:\n" + repeatLines(11, "      k%d: v\n"),
			"load_balancers[0].tags", "11 tags; at most 10", 4},
		{"tag key too long", "load_balancers: [{id: lb, address: 203.0.113.10, tags: {" + strings.Repeat("k", 129) + ": v}}]\n",
			`load_balancers[0].tags["` + strings.Repeat("k", 129) + `"]`, "the key is 129 characters; at most 128", 0},
		{"unknown spec", "load_balancers: [{id: lb, address: 203.0.113.10, spec: slb.s9.huge}]\n",
			"load_balancers[0].spec", `"slb.s9.huge" is not a known spec: one of slb.s1.small`, 0},
		{"spec and limits", "load_balancers: [{id: lb, address: 203.0.113.10, spec: slb.s1.small, limits: {max_connections: 10}}]\n",
			"load_balancers[0].limits", "set either spec or limits, not both", 0},
		{"listener bandwidth over total", `
load_balancers:
  - id: lb
    address: 203.0.113.10
    bandwidth_mbps: 100
    listeners: [{protocol: tcp, port: 80, bandwidth_mbps: 200}]
`, "load_balancers[0].listeners[0].bandwidth_mbps", "200 Mbit/s exceeds the load balancer's bandwidth_mbps 100", 0},
		{"listener peaks over total", `
load_balancers:
  - id: lb
    address: 203.0.113.10
    bandwidth_mbps: 100
    listeners: [{protocol: tcp, port: 80, bandwidth_mbps: 60}, {protocol: tcp, port: 81, bandwidth_mbps: 60}]
`, "load_balancers[0].bandwidth_mbps", "sum of listener peaks 120 Mbit/s exceeds the load balancer's 100", 5},
		{"flood per source over total", `
load_balancers:
  - {id: lb, address: 203.0.113.10, flood_protection: {syn: {per_source_pps: 2000, total_pps: 1000}}}
`, "load_balancers[0].flood_protection.syn.per_source_pps", "2000 exceeds total_pps 1000", 0},
		{"flood blackhole below clean", `
load_balancers:
  - {id: lb, address: 203.0.113.10, flood_protection: {clean_pps: 1000, blackhole_pps: 500}}
`, "load_balancers[0].flood_protection.blackhole_pps", "500 is below clean_pps 1000", 0},
		{"flood protection on an IPv6 VIP", `
load_balancers:
  - {id: lb, address: "2001:db8::10", flood_protection: {clean_pps: 1000}}
`, "load_balancers[0].flood_protection", "flood protection runs in XDP, which serves IPv4 VIPs; 2001:db8::10 is IPv6", 0},
		{"flood hold 25h", `
load_balancers:
  - {id: lb, address: 203.0.113.10, flood_protection: {blackhole_hold: 25h}}
`, "load_balancers[0].flood_protection.blackhole_hold", "90000s is out of range 1s..24h", 0},

		// snat and eips
		{"snat public IP reused by an eip", `
snat_pools: [{id: out, public_ips: [203.0.113.20], sources: [10.0.0.0/24]}]
eips: [{public_ip: 203.0.113.20, private_ip: 10.0.1.10}]
`, "eips[0].public_ip", "203.0.113.20 is already used by snat_pools[0].public_ips[0]", 0},
		{"snat public IP is a VIP", `
load_balancers: [{id: lb, address: 203.0.113.10}]
snat_pools: [{id: out, public_ips: [203.0.113.10], sources: [10.0.0.0/24]}]
`, "snat_pools[0].public_ips[0]", "203.0.113.10 is the address of load_balancers[0]", 0},
		{"snat sources too many hosts", `
snat_pools: [{id: out, public_ips: [203.0.113.20], sources: [10.0.0.0/16]}]
`, "snat_pools[0].sources", "the sources hold 65536 addresses; a pool serves at most 1000 hosts", 0},
		{"snat sources 1001 hosts", `
snat_pools: [{id: out, public_ips: [203.0.113.20], sources: [10.0.0.0/23, 10.0.2.0/24, 10.0.3.0/25, 10.0.3.128/26, 10.0.3.192/27, 10.0.3.224/29, 10.0.3.232]}]
`, "snat_pools[0].sources", "the sources hold 1001 addresses", 0},
		{"overlapping snat sources", `
snat_pools:
  - {id: a, public_ips: [203.0.113.20], sources: [10.0.0.0/24]}
  - {id: b, public_ips: [203.0.113.21], sources: [10.0.0.128/25]}
`, "snat_pools[1].sources[0]", "10.0.0.128/25 overlaps snat_pools[0].sources[0] (10.0.0.0/24)", 0},
		{"snat IPv6 public IP", `
snat_pools: [{id: a, public_ips: ["2001:db8::1"], sources: [10.0.0.0/24]}]
`, "snat_pools[0].public_ips[0]", "is not an IPv4 address", 0},
		{"snat pool without sources", `
snat_pools: [{id: a, public_ips: [203.0.113.20]}]
`, "snat_pools[0].sources", "at least one source CIDR is required", 0},
		{"eip private IP twice", `
eips: [{public_ip: 203.0.113.30, private_ip: 10.0.1.10}, {public_ip: 203.0.113.31, private_ip: 10.0.1.10}]
`, "eips[1].private_ip", "10.0.1.10 is already mapped by eips[0]", 0},

		// node
		{"tcp control listener without tls", `
node: {control: {listen: "tcp://0.0.0.0:9443"}}
`, "node.control.tls", "required with a tcp:// listener", 0},
		{"control listener without scheme", `
node: {control: {listen: "/run/xlb.sock"}}
`, "node.control.listen", `"/run/xlb.sock" is not unix://PATH or tcp://HOST:PORT`, 0},
		{"bad interface name", `
node: {interfaces: [eth0, "this-name-is-too-long", eth0]}
`, "node.interfaces[1]", "is not a valid interface name", 0},
		{"duplicate interface", `
node: {interfaces: [eth0, eth1, eth0]}
`, "node.interfaces[2]", `"eth0" is already listed as interfaces[0]`, 0},
		{"metrics without port", `
node: {metrics: {listen: "127.0.0.1"}}
`, "node.metrics.listen", "write HOST:PORT (127.0.0.1:9100) or off", 0},
		{"conntrack too small", `
node: {conntrack: {max_flows: 100}}
`, "node.conntrack.max_flows", "100 is out of range 1024..67108864", 0},
		{"route table main", `
node: {announce: {route_table: 254}}
`, "node.announce.route_table", "254 is a table the kernel reserves", 0},

		// decoding
		{"unknown field", lbYAML(`      - protocol: http
        port: 80
        helth_check: {type: http}
`), "load_balancers[0].listeners[0].helth_check", "unknown field (line 7); did you mean health_check?", 7},
		{"unknown enum value", lbYAML("      - {protocol: htp, port: 80}\n"),
			"load_balancers[0].listeners[0].protocol", `"htp" is not one of tcp, udp, http, https`, 5},
		{"duration as a bare number", lbYAML("      - protocol: tcp\n        port: 80\n        health_check:\n          interval: 2\n"),
			"load_balancers[0].listeners[0].health_check.interval", `2 is a bare number, not a duration (line 8); write a duration with its unit, e.g. "2s"`, 8},
		{"bad duration", lbYAML("      - {protocol: tcp, port: 80, health_check: {interval: 2 seconds}}\n"),
			"load_balancers[0].listeners[0].health_check.interval", `"2 seconds" is not a duration`, 0},
		{"list expected", "node: {interfaces: eth0}\n", "node.interfaces", `list expected, got "eth0"`, 1},
		{"mapping expected", "load_balancers: [lb]\n", "load_balancers[0]", `mapping expected, got "lb"`, 1},
		{"negative number", lbYAML("      - {protocol: tcp, port: -1}\n"),
			"load_balancers[0].listeners[0].port", "-1 is out of range 0..4294967295", 0},
		{"bad bool", lbYAML("      - {protocol: tcp, port: 80, enabled: yes}\n"),
			"load_balancers[0].listeners[0].enabled", `boolean expected, got "yes"`, 0},
	}
	if len(tests) < 35 {
		t.Fatalf("only %d bad configurations", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load([]byte(tt.yaml), dir)
			errs := fieldErrors(t, err)
			e := findError(errs, tt.path, tt.want)
			if e == nil {
				t.Fatalf("no error on %s saying %q; got:\n%v", tt.path, tt.want, err)
			}
			if tt.line != 0 && e.Line != tt.line {
				t.Errorf("line %d, want %d: %v", e.Line, tt.line, e)
			}
		})
	}
}

// One pass reports every problem, not only the first.
func TestEveryErrorIsReported(t *testing.T) {
	yaml := `
server_groups:
  - id: web
    servers: [{address: 10.0.0.1, weight: 101}, {address: 10.0.0.2, weight: 200}]
load_balancers:
  - id: lb
    address: 203.0.113.10
    listeners:
      - {protocol: http, port: 80, scheduler: maglev, server_group: web}
      - {protocol: tcp, port: 80, health_check: {interval: 51s, healthy_threshold: 1}}
      - {protocol: udp, port: 53, persistence: {type: source_ip}}
  - id: lb
    address: 203.0.113.10
`
	errs := fieldErrors(t, config.Validate(mustDecode(t, yaml)))
	want := map[string]string{
		"server_groups[0].servers[0].weight":                            "101 is out of range",
		"server_groups[0].servers[1].weight":                            "200 is out of range",
		"load_balancers[0].listeners[0].scheduler":                      "maglev",
		"load_balancers[0].listeners[1].port":                           "already used by listeners[0]",
		"load_balancers[0].listeners[1].health_check.interval":          "51s",
		"load_balancers[0].listeners[1].health_check.healthy_threshold": "1 is out of range",
		"load_balancers[0].listeners[2].persistence.type":               "source_ip",
		"load_balancers[1].id":                                          "already used",
		"load_balancers[1].address":                                     "already used",
	}
	for path, msg := range want {
		if findError(errs, path, msg) == nil {
			t.Errorf("missing %s: %s", path, msg)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("%d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	if lines := strings.Split(errs.Error(), "\n"); len(lines) != len(errs) {
		t.Errorf("Error() has %d lines for %d errors", len(lines), len(errs))
	}

	// Decoding also reports every problem.
	_, err := config.Decode([]byte(lbYAML(`      - {protocol: htp, port: "80", helth_check: {}}
      - {protocol: tcp, port: 81, timeouts: {idle: 5}}
`)))
	if n := len(fieldErrors(t, err)); n != 4 {
		t.Errorf("%d decode errors, want 4:\n%v", n, err)
	}
}

// Configurations the rules must accept, because users rely on them.
func TestLegalEdgeCases(t *testing.T) {
	dir := certDir(t)
	tests := []struct{ name, yaml string }{
		{"empty document", ""},
		{"comments only", "# nothing yet\n"},
		{"tcp and udp on the same port", lbYAML("      - {protocol: tcp, port: 53}\n      - {protocol: udp, port: 53}\n")},
		{"https and udp on 443 without http3", certsYAML + lbYAML(`
      - {protocol: https, port: 443, tls: {certificates: [www]}}
      - {protocol: udp, port: 443}
`)},
		{"enabled allow list without entries", lbYAML("      - {protocol: tcp, port: 80, acl: {mode: allow, cidrs: []}}\n")},
		{"disabled acl without mode", lbYAML("      - {protocol: tcp, port: 80, acl: {enabled: false, cidrs: [10.0.0.0/8]}}\n")},
		{"empty default pool", lbYAML("      - {protocol: http, port: 80}\n")},
		{"weight 0 and port 0", "load_balancers: [{id: lb, address: 203.0.113.10, servers: [{address: 10.0.0.1, weight: 0}]}]\n"},
		{"same server on two ports", "server_groups: [{id: g, servers: [{address: 10.0.0.1, port: 80}, {address: 10.0.0.1, port: 81}]}]\n"},
		{"requests_per_second without http listeners", "load_balancers: [{id: lb, address: 203.0.113.10, limits: {requests_per_second: 10}, listeners: [{protocol: tcp, port: 22}]}]\n"},
		{"IPv6 VIP and ACL", lbYAML(`      - {protocol: tcp, port: 80, acl: {mode: deny, cidrs: ["2001:db8::/32", "2001:db8:1::1"]}}`) + "\n"},
		{"wildcard rule", "server_groups: [{id: web}]\n" + lbYAML("      - {protocol: http, port: 80, rules: [{domain: \"*.example.com\", server_group: web}]}\n")},
		{"mutual TLS with CRL", certsYAML + lbYAML("      - {protocol: https, port: 443, tls: {certificates: [www], ca: clients, mutual: true, min_version: \"1.3\"}}\n")},
		{"redirect to https", certsYAML + lbYAML(`
      - {protocol: http, port: 80, redirect_https: {status: 308}}
      - {protocol: https, port: 443, tls: {certificates: [www]}}
`)},
		{"disabled udp check", lbYAML("      - {protocol: udp, port: 53, health_check: {enabled: false}}\n")},
		{"metrics off", "node: {metrics: {listen: \"off\"}}\n"},
		{"1000 snat hosts", "snat_pools: [{id: a, public_ips: [203.0.113.20], sources: [10.0.0.0/23, 10.0.2.0/24, 10.0.3.0/25, 10.0.3.128/26, 10.0.3.192/27, 10.0.3.224/29]}]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := config.Load([]byte(tt.yaml), dir); err != nil {
				t.Fatalf("rejected:\n%v", err)
			}
		})
	}
}

// A configuration built through the API can hold what YAML cannot: enum
// numbers the schema does not define, fields WithDefaults never saw.
func TestValidateAPIConfig(t *testing.T) {
	if err := config.Validate(nil); err != nil {
		t.Errorf("Validate(nil) = %v", err)
	}
	cfg := &xlbv1.Config{LoadBalancers: []*xlbv1.LoadBalancer{{
		Id: "lb", Address: "203.0.113.10",
		Servers:   []*xlbv1.Server{{Address: "10.0.0.1"}},
		Listeners: []*xlbv1.Listener{{Protocol: 99, Port: 80, BackendPort: 80}},
	}}}
	errs := fieldErrors(t, config.Validate(cfg))
	if len(errs) != 1 || findError(errs, "load_balancers[0].listeners[0].protocol", "99 is not one of tcp, udp, http, https") == nil {
		t.Errorf("want only the undefined enum number reported; got:\n%v", errs)
	}
	if err := config.Validate(config.WithDefaults(&xlbv1.Config{})); err != nil {
		t.Errorf("the defaults of an empty configuration are invalid: %v", err)
	}
}
