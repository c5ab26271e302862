package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// fakeEngine records what happened to its staged changes.
type fakeEngine struct {
	name    string
	failOn  string // Prepare fails when the config's first load balancer has this id
	log     *[]string
	running string
}

func (f *fakeEngine) Name() string { return f.name }

func (f *fakeEngine) Prepare(_ context.Context, cfg *xlbv1.Config) (Staged, error) {
	id := ""
	if len(cfg.GetLoadBalancers()) > 0 {
		id = cfg.GetLoadBalancers()[0].GetId()
	}
	if id == f.failOn {
		return nil, errors.New("refused " + id)
	}
	*f.log = append(*f.log, f.name+" prepare "+id)
	return &fakeStaged{f: f, id: id}, nil
}

type fakeStaged struct {
	f  *fakeEngine
	id string
}

func (s *fakeStaged) Commit() {
	s.f.running = s.id
	*s.f.log = append(*s.f.log, s.f.name+" commit "+s.id)
}

func (s *fakeStaged) Abort() { *s.f.log = append(*s.f.log, s.f.name+" abort "+s.id) }

func cfgWith(id string) *xlbv1.Config {
	return &xlbv1.Config{LoadBalancers: []*xlbv1.LoadBalancer{{Id: id}}}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	var log []string
	a := &fakeEngine{name: "a", failOn: "never", log: &log}
	b := &fakeEngine{name: "b", failOn: "bad", log: &log}
	r := New(a, b)

	v, err := r.Apply(context.Background(), cfgWith("one"))
	if err != nil || v != 1 {
		t.Fatalf("first apply: version %d, err %v", v, err)
	}
	if a.running != "one" || b.running != "one" {
		t.Fatalf("engines run %q and %q, want one", a.running, b.running)
	}

	log = nil
	v, err = r.Apply(context.Background(), cfgWith("bad"))
	if err == nil || !strings.Contains(err.Error(), "engine b") {
		t.Fatalf("apply refused by b: err = %v, want it to name engine b", err)
	}
	if v != 1 {
		t.Errorf("version after a refused apply = %d, want 1", v)
	}
	if a.running != "one" || b.running != "one" {
		t.Errorf("after refusal engines run %q and %q, want the old config on both", a.running, b.running)
	}
	want := []string{"a prepare bad", "a abort bad"}
	if strings.Join(log, ",") != strings.Join(want, ",") {
		t.Errorf("steps = %v, want %v", log, want)
	}
	cur, ver := r.Current()
	if ver != 1 || cur.GetLoadBalancers()[0].GetId() != "one" {
		t.Errorf("Current = %v v%d, want one v1", cur, ver)
	}
}

func TestApplyHonoursCancelledContext(t *testing.T) {
	var log []string
	r := New(&fakeEngine{name: "a", log: &log, failOn: "never"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Apply(ctx, cfgWith("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if got := strings.Join(log, ","); got != "a prepare x,a abort x" {
		t.Errorf("steps = %q, want prepare then abort", got)
	}
}

func TestHealthChecksRuleGroups(t *testing.T) {
	cfg := &xlbv1.Config{
		ServerGroups: []*xlbv1.ServerGroup{{Id: "api", Servers: []*xlbv1.Server{{Address: "10.0.0.9", Port: 9000}}}},
		LoadBalancers: []*xlbv1.LoadBalancer{{
			Id: "lb", Address: "192.0.2.1",
			Servers: []*xlbv1.Server{{Address: "10.0.0.1"}},
			Listeners: []*xlbv1.Listener{{
				Protocol: xlbv1.Protocol_http, Port: 80, BackendPort: 8080,
				HealthCheck: &xlbv1.HealthCheck{Type: xlbv1.HealthCheck_http},
				Rules:       []*xlbv1.Rule{{Domain: "api.example.com", ServerGroup: "api"}},
			}},
		}},
	}
	h := &Health{backends: NewBackends()}
	targets, _, err := h.compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, tg := range targets {
		got[tg.Addr.String()] = true
	}
	if !got["10.0.0.1:8080"] || !got["10.0.0.9:9000"] || len(got) != 2 {
		t.Errorf("checked %v, want the default pool's server and the rule group's", got)
	}
}
