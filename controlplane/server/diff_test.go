package server

import (
	"strings"
	"testing"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

func u32(v uint32) *uint32 { return &v }

func TestDiffMatchesItemsByIdentity(t *testing.T) {
	old := &xlbv1.Config{
		Certificates: []*xlbv1.Certificate{{Id: "web", Type: xlbv1.Certificate_server, CertPem: "C1", KeyPem: "SECRET1"}},
		LoadBalancers: []*xlbv1.LoadBalancer{{
			Id: "lb", Tags: map[string]string{"env": "prod", "team": "a"},
			Servers: []*xlbv1.Server{{Address: "10.0.0.1", Weight: u32(100)}, {Address: "10.0.0.2", Port: 81}},
			Listeners: []*xlbv1.Listener{
				{Protocol: xlbv1.Protocol_tcp, Port: 80, Scheduler: xlbv1.Scheduler_rr},
				{Protocol: xlbv1.Protocol_udp, Port: 53},
			},
		}},
	}
	new := &xlbv1.Config{
		Certificates: []*xlbv1.Certificate{{Id: "web", Type: xlbv1.Certificate_server, CertPem: "C2", KeyPem: "SECRET2"}},
		LoadBalancers: []*xlbv1.LoadBalancer{{
			Id: "lb", Tags: map[string]string{"env": "test", "owner": "b"},
			Servers: []*xlbv1.Server{{Address: "10.0.0.2", Port: 81, Weight: u32(5)}, {Address: "10.0.0.1", Weight: u32(0)}},
			Listeners: []*xlbv1.Listener{
				// A listener inserted first: the others are not "changed".
				{Protocol: xlbv1.Protocol_tcp, Port: 8080},
				{Protocol: xlbv1.Protocol_tcp, Port: 80, Scheduler: xlbv1.Scheduler_wlc},
			},
		}},
	}
	text := DiffText(Diff(old, new))
	for _, want := range []string{
		"~ certificates[web].cert_pem: C1 -> C2\n",
		"~ certificates[web].key_pem: (redacted) -> (redacted)\n",
		`~ load_balancers[lb].tags["env"]: prod -> test` + "\n",
		`- load_balancers[lb].tags["team"]: a` + "\n",
		`+ load_balancers[lb].tags["owner"]: b` + "\n",
		"~ load_balancers[lb].servers[10.0.0.1].weight: 100 -> 0\n",
		"+ load_balancers[lb].servers[10.0.0.2:81].weight: 5\n",
		"~ load_balancers[lb].listeners[tcp/80].scheduler: rr -> wlc\n",
		"- load_balancers[lb].listeners[udp/53]: ",
		"+ load_balancers[lb].listeners[tcp/8080]: ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("diff lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "SECRET") {
		t.Errorf("the diff shows a private key:\n%s", text)
	}
	if n := len(Diff(new, new)); n != 0 {
		t.Errorf("a configuration against itself: %d changes", n)
	}
	if got := DiffText(nil); got != "no changes\n" {
		t.Errorf("DiffText(nil) = %q", got)
	}
}

func TestDiffOfAnAddedCertificateRedactsItsKey(t *testing.T) {
	changes := Diff(&xlbv1.Config{}, &xlbv1.Config{Certificates: []*xlbv1.Certificate{{Id: "web", CertPem: "C", KeyPem: "SECRET"}}})
	if len(changes) != 1 || changes[0].GetKind() != xlbv1.Change_added || strings.Contains(changes[0].GetNewValue(), "SECRET") ||
		!strings.Contains(changes[0].GetNewValue(), redacted) {
		t.Errorf("changes %v, want one addition with the key redacted", changes)
	}
}
