package server

import (
	"context"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/certs/certstest"
)

var bg = context.Background()

func TestApplyConflictAndRollback(t *testing.T) {
	h := newHarness(t)
	if v := h.version(); v != 1 {
		t.Fatalf("initial version %d, want 1", v)
	}
	// Apply with the right expected version: version 2, the change listed.
	resp, err := h.client.Apply(bg, &xlbv1.ApplyRequest{Config: h.config(", scheduler: wlc"), ExpectedVersion: 1, Comment: "wlc"})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if resp.GetVersion() != 2 {
		t.Errorf("Apply version = %d, want 2", resp.GetVersion())
	}
	if !hasChange(resp.GetChanges(), "load_balancers[lb].listeners[tcp/"+itoa(h.port)+"].scheduler", "rr", "wlc") {
		t.Errorf("changes %v lack the scheduler rr -> wlc", resp.GetChanges())
	}
	// A stale expected version is a conflict; nothing changes.
	_, err = h.client.Apply(bg, &xlbv1.ApplyRequest{Config: h.config(", scheduler: wrr"), ExpectedVersion: 1})
	wantCode(t, err, codes.Aborted)
	got, err := h.client.Get(bg, &xlbv1.GetRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetInfo().GetVersion() != 2 || got.GetConfig().GetLoadBalancers()[0].GetListeners()[0].GetScheduler() != xlbv1.Scheduler_wlc {
		t.Errorf("after the conflict: version %d scheduler %v, want 2 wlc", got.GetInfo().GetVersion(), got.GetConfig().GetLoadBalancers()[0].GetListeners()[0].GetScheduler())
	}
	if got.GetInfo().GetComment() != "wlc" || got.GetInfo().GetSource() != "api apply" {
		t.Errorf("version info %v, want the comment and source", got.GetInfo())
	}
	// The same configuration again is no new version.
	resp, err = h.client.Apply(bg, &xlbv1.ApplyRequest{Config: got.GetConfig()})
	if err != nil || resp.GetVersion() != 2 || len(resp.GetChanges()) != 0 {
		t.Errorf("re-applying the running configuration: %v, %v; want version 2 and no changes", resp, err)
	}

	// Rollback to 1 is version 3 with version 1's content.
	resp, err = h.client.Rollback(bg, &xlbv1.RollbackRequest{Version: 1, ExpectedVersion: 2})
	if err != nil || resp.GetVersion() != 3 {
		t.Fatalf("Rollback: %v, %v; want version 3", resp, err)
	}
	v1, _ := h.client.Get(bg, &xlbv1.GetRequest{Version: 1})
	v3, _ := h.client.Get(bg, &xlbv1.GetRequest{})
	if !proto.Equal(v1.GetConfig(), v3.GetConfig()) || v3.GetInfo().GetSource() != "rollback to 1" {
		t.Errorf("version 3 (%s) differs from version 1", v3.GetInfo().GetSource())
	}
	_, err = h.client.Rollback(bg, &xlbv1.RollbackRequest{Version: 99})
	wantCode(t, err, codes.NotFound)

	list, err := h.client.ListVersions(bg, &xlbv1.ListVersionsRequest{})
	if err != nil || list.GetCurrent() != 3 || len(list.GetVersions()) != 3 {
		t.Errorf("ListVersions = %v, %v; want current 3 of 3", list, err)
	}
	// The listener serves throughout.
	if n := h.count(4); n["a"]+n["b"] != 4 {
		t.Errorf("traffic after the changes: %v", n)
	}
}

func TestInvalidConfigRejectedWithFieldPaths(t *testing.T) {
	h := newHarness(t)
	bad := h.config("")
	bad.LoadBalancers[0].Address = "not-an-ip"
	bad.LoadBalancers[0].Listeners[0].Port = 0
	_, err := h.client.Apply(bg, &xlbv1.ApplyRequest{Config: bad})
	st := wantCode(t, err, codes.InvalidArgument)
	paths := violations(t, st)
	for _, want := range []string{"load_balancers[0].address", "load_balancers[0].listeners[0].port"} {
		if !slices.Contains(paths, want) {
			t.Errorf("field violations %v lack %s", paths, want)
		}
	}
	// Diff validates the same way.
	_, err = h.client.Diff(bg, &xlbv1.DiffRequest{Config: bad})
	wantCode(t, err, codes.InvalidArgument)
	if v := h.version(); v != 1 {
		t.Errorf("version after a rejected apply = %d, want 1", v)
	}
	if n := h.count(2); n["a"] != 1 || n["b"] != 1 {
		t.Errorf("the running listener after a rejected apply: %v, want a and b in turn", n)
	}
}

func TestEngineRefusalChangesNothing(t *testing.T) {
	h := newHarness(t)
	refused := h.config("")
	refused.LoadBalancers[0].Tags = map[string]string{"refuse": "yes"}
	refused.LoadBalancers[0].Listeners[0].Scheduler = xlbv1.Scheduler_wlc
	_, err := h.client.Apply(bg, &xlbv1.ApplyRequest{Config: refused})
	st := wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "refused on purpose") {
		t.Errorf("message %q does not say why", st.Message())
	}
	got, _ := h.client.Get(bg, &xlbv1.GetRequest{})
	if got.GetInfo().GetVersion() != 1 || got.GetConfig().GetLoadBalancers()[0].GetListeners()[0].GetScheduler() != xlbv1.Scheduler_rr {
		t.Errorf("after a refusal: version %d, want 1 and rr still", got.GetInfo().GetVersion())
	}
	if cur, _ := h.store.CurrentVersion(); cur != 1 {
		t.Errorf("store current = %d, want 1", cur)
	}
	// The refused version left no gap.
	resp, err := h.client.Apply(bg, &xlbv1.ApplyRequest{Config: h.config(", scheduler: wlc")})
	if err != nil || resp.GetVersion() != 2 {
		t.Errorf("next apply: %v, %v; want version 2", resp, err)
	}
}

func TestDiffIsADryRun(t *testing.T) {
	h := newHarness(t)
	next := h.config("")
	next.LoadBalancers[0].Servers = next.LoadBalancers[0].Servers[:1]
	d, err := h.client.Diff(bg, &xlbv1.DiffRequest{Config: next})
	if err != nil {
		t.Fatal(err)
	}
	gone := "load_balancers[lb].servers[" + h.backends["b"].addr + "]"
	found := false
	for _, c := range d.GetChanges() {
		found = found || (c.GetPath() == gone && c.GetKind() == xlbv1.Change_removed)
	}
	if !found || !strings.Contains(d.GetText(), "- "+gone) || d.GetBaseVersion() != 1 {
		t.Errorf("Diff = %v, want %s removed against version 1", d, gone)
	}
	if v := h.version(); v != 1 {
		t.Errorf("Diff changed the version to %d", v)
	}
	if n := h.count(4); n["b"] == 0 {
		t.Errorf("Diff took b out of rotation: %v", n)
	}
}

func TestSetServerWeight(t *testing.T) {
	h := newHarness(t)
	resp, err := h.client.SetServerWeight(bg, &xlbv1.SetServerWeightRequest{Address: "127.0.0.1", Port: uint32(h.backends["b"].port), Weight: 0})
	if err != nil || resp.GetVersion() != 2 {
		t.Fatalf("SetServerWeight: %v, %v", resp, err)
	}
	if n := h.count(4); n["a"] != 4 {
		t.Errorf("with b at weight 0: %v, want all on a", n)
	}
	got, _ := h.client.Get(bg, &xlbv1.GetRequest{})
	if w := got.GetConfig().GetLoadBalancers()[0].GetServers()[1].Weight; w == nil || *w != 0 {
		t.Errorf("stored weight = %v, want 0", w)
	}
	_, err = h.client.SetServerWeight(bg, &xlbv1.SetServerWeightRequest{Address: "10.9.9.9", Weight: 5})
	wantCode(t, err, codes.NotFound)
	_, err = h.client.SetServerWeight(bg, &xlbv1.SetServerWeightRequest{Address: "127.0.0.1", Weight: 101})
	wantCode(t, err, codes.InvalidArgument)
}

func TestDrainKeepsOpenConnectionsAndSurvivesApplies(t *testing.T) {
	h := newHarness(t)
	// Open connections until one is on a.
	conn, name := h.who()
	for name != "a" {
		conn.Close()
		conn, name = h.who()
	}
	defer conn.Close()

	resp, err := h.client.SetServerState(bg, &xlbv1.SetServerStateRequest{Address: "127.0.0.1", Port: uint32(h.backends["a"].port), State: xlbv1.AdminState_drain})
	if err != nil || len(resp.GetBackends()) != 1 || resp.GetBackends()[0] != h.backends["a"].addr {
		t.Fatalf("SetServerState: %v, %v", resp, err)
	}
	if n := h.count(4); n["b"] != 4 {
		t.Errorf("new connections while a drains: %v, want all on b", n)
	}
	// The open connection to a still works.
	c := conn
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("writing on the drained backend's connection: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := readFull(c, buf); err != nil || string(buf) != "ping" {
		t.Errorf("echo on the drained backend's connection = %q, %v", buf, err)
	}
	stats, err := h.client.GetStats(bg, &xlbv1.GetStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range stats.GetBackends() {
		if b.GetBackend() == h.backends["a"].addr && (b.GetAdmin() != xlbv1.AdminState_drain || b.GetActive() != 1) {
			t.Errorf("stats for a: %v, want drain with 1 active", b)
		}
	}

	// An apply keeps the drain.
	if _, err := h.client.Apply(bg, &xlbv1.ApplyRequest{Config: h.config(", scheduler: wrr")}); err != nil {
		t.Fatal(err)
	}
	if n := h.count(4); n["b"] != 4 {
		t.Errorf("after an apply a should still drain: %v", n)
	}
	if _, err := h.client.SetServerState(bg, &xlbv1.SetServerStateRequest{Address: "127.0.0.1", State: xlbv1.AdminState_enabled}); err != nil {
		t.Fatal(err)
	}
	if n := h.count(4); n["a"] != 2 {
		t.Errorf("after enable: %v, want a and b in turn", n)
	}
	_, err = h.client.SetServerState(bg, &xlbv1.SetServerStateRequest{Address: "127.0.0.1"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = h.client.SetServerState(bg, &xlbv1.SetServerStateRequest{Address: "10.9.9.9", State: xlbv1.AdminState_drain})
	wantCode(t, err, codes.NotFound)
}

func readFull(c net.Conn, buf []byte) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	return io.ReadFull(c, buf)
}

func TestWatchHealthStreamsBackendDown(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(bg, 15*time.Second)
	defer cancel()
	stream, err := h.client.WatchHealth(ctx, &xlbv1.WatchHealthRequest{Initial: true})
	if err != nil {
		t.Fatal(err)
	}
	initial := map[string]bool{}
	for len(initial) < 2 {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("initial events: %v", err)
		}
		if !ev.GetInitial() || ev.GetNewState() != xlbv1.HealthState_up {
			t.Fatalf("initial event %v, want an initial up", ev)
		}
		initial[ev.GetBackend()] = true
	}
	b := h.backends["b"]
	b.stop()
	<-b.done
	for {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for b to go down: %v", err)
		}
		if ev.GetBackend() == b.addr && ev.GetNewState() == xlbv1.HealthState_down {
			if ev.GetOldState() != xlbv1.HealthState_up || ev.GetInitial() || ev.GetTime() == nil || len(ev.GetListeners()) == 0 {
				t.Errorf("down event %v lacks its details", ev)
			}
			break
		}
	}
	// And the engines stopped sending to it (the pools hear of it through
	// their own subscription, maybe just after this stream).
	deadline := time.Now().Add(5 * time.Second)
	for h.health(b.addr) != xlbv1.HealthState_down {
		if time.Now().After(deadline) {
			t.Fatal("the pools never marked b down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := h.count(3); n["a"] != 3 {
		t.Errorf("after b went down: %v", n)
	}
}

func TestCertificatesWithoutKeys(t *testing.T) {
	h := newHarness(t)
	ca := certstest.NewCA(t, "test ca")
	pair := certstest.NewServer(t, ca, "www.example.com")
	up, err := h.client.UploadCertificate(bg, &xlbv1.UploadCertificateRequest{Certificate: &xlbv1.Certificate{
		Id: "web", Type: xlbv1.Certificate_server, CertPem: string(pair.CertPEM), KeyPem: string(pair.KeyPEM),
	}})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	info := up.GetCertificate()
	if up.GetVersion() != 2 || !info.GetHasKey() || !slices.Contains(info.GetDnsNames(), "www.example.com") || info.GetNotAfter() == nil {
		t.Errorf("upload answer %v", up)
	}
	key := string(pair.KeyPEM)
	list, err := h.client.ListCertificates(bg, &xlbv1.ListCertificatesRequest{})
	if err != nil || len(list.GetCertificates()) != 1 || list.GetCertificates()[0].GetId() != "web" {
		t.Fatalf("list: %v, %v", list, err)
	}
	got, _ := h.client.Get(bg, &xlbv1.GetRequest{})
	for _, m := range []proto.Message{up, list, got} {
		if strings.Contains(m.(interface{ String() string }).String(), "PRIVATE KEY") {
			t.Errorf("%T returned the private key", m)
		}
	}
	// Get's configuration applied back keeps the key: no change at all.
	again, err := h.client.Apply(bg, &xlbv1.ApplyRequest{Config: got.GetConfig()})
	if err != nil || again.GetVersion() != 2 {
		t.Errorf("re-applying Get's configuration: %v, %v; want no new version", again, err)
	}
	if run, _ := h.srv.Running(); run.GetCertificates()[0].GetKeyPem() != key {
		t.Errorf("the running certificate lost its key")
	}

	// A key that does not match, or a bad PEM, is refused naming the field.
	other := certstest.NewServer(t, ca, "other")
	_, err = h.client.UploadCertificate(bg, &xlbv1.UploadCertificateRequest{Certificate: &xlbv1.Certificate{
		Id: "bad", Type: xlbv1.Certificate_server, CertPem: string(pair.CertPEM), KeyPem: string(other.KeyPEM),
	}})
	if p := violations(t, wantCode(t, err, codes.InvalidArgument)); p[0] != "certificate.cert_pem" {
		t.Errorf("violations %v", p)
	}
	_, err = h.client.UploadCertificate(bg, &xlbv1.UploadCertificateRequest{Certificate: &xlbv1.Certificate{
		Id: "ca", Type: xlbv1.Certificate_ca, CertPem: "not pem",
	}})
	wantCode(t, err, codes.InvalidArgument)

	// In use by an https listener: the delete names the listener's field.
	withHTTPS := h.config("")
	withHTTPS.Certificates = got.GetConfig().GetCertificates()
	withHTTPS.LoadBalancers[0].Listeners = append(withHTTPS.LoadBalancers[0].Listeners, &xlbv1.Listener{
		Protocol: xlbv1.Protocol_https, Port: uint32(freePort(t)), Tls: &xlbv1.Tls{Certificates: []string{"web"}},
		HealthCheck: &xlbv1.HealthCheck{Enabled: proto.Bool(false)},
	})
	if _, err := h.client.Apply(bg, &xlbv1.ApplyRequest{Config: withHTTPS}); err != nil {
		t.Fatalf("applying an https listener on the certificate: %v", err)
	}
	list, _ = h.client.ListCertificates(bg, &xlbv1.ListCertificatesRequest{})
	if used := list.GetCertificates()[0].GetUsedBy(); len(used) != 1 || !strings.Contains(used[0], "lb/https/") {
		t.Errorf("used_by = %v, want the https listener", used)
	}
	_, err = h.client.DeleteCertificate(bg, &xlbv1.DeleteCertificateRequest{Id: "web"})
	if p := violations(t, wantCode(t, err, codes.InvalidArgument)); !slices.Contains(p, "load_balancers[0].listeners[1].tls.certificates[0]") {
		t.Errorf("deleting a certificate in use: violations %v", p)
	}
	withoutHTTPS := h.config("")
	withoutHTTPS.Certificates = got.GetConfig().GetCertificates()
	if _, err := h.client.Apply(bg, &xlbv1.ApplyRequest{Config: withoutHTTPS}); err != nil {
		t.Fatal(err)
	}

	del, err := h.client.DeleteCertificate(bg, &xlbv1.DeleteCertificateRequest{Id: "web"})
	if err != nil || del.GetVersion() != 5 {
		t.Fatalf("delete: %v, %v", del, err)
	}
	list, _ = h.client.ListCertificates(bg, &xlbv1.ListCertificatesRequest{})
	if len(list.GetCertificates()) != 0 {
		t.Errorf("after delete: %v", list)
	}
	_, err = h.client.DeleteCertificate(bg, &xlbv1.DeleteCertificateRequest{Id: "web"})
	wantCode(t, err, codes.NotFound)
}

func TestStatsAndSnat(t *testing.T) {
	h := newHarness(t)
	h.count(3)
	stats, err := h.client.GetStats(bg, &xlbv1.GetStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.GetLoadBalancers()) != 1 || stats.GetLoadBalancers()[0].GetId() != "lb" {
		t.Fatalf("stats: %v", stats)
	}
	lb := stats.GetLoadBalancers()[0]
	name := "lb/tcp/" + itoa(h.port)
	if len(lb.GetListeners()) != 1 || lb.GetListeners()[0].GetName() != name || lb.GetListeners()[0].GetCounters()["xlb_l4_connections_total"] != 3 {
		t.Errorf("listener stats %v, want %s with 3 connections", lb.GetListeners(), name)
	}
	if lb.GetCounters()["xlb_l4_connections_total"] != 3 {
		t.Errorf("load balancer counters %v", lb.GetCounters())
	}
	if len(stats.GetBackends()) != 2 || stats.GetBackends()[0].GetHealth() != xlbv1.HealthState_up {
		t.Errorf("backend stats %v", stats.GetBackends())
	}
	snat, err := h.client.GetSnatStatus(bg, &xlbv1.GetSnatStatusRequest{})
	if err != nil || len(snat.GetPools()) != 0 || snat.GetMessage() != "no snat pools are configured" {
		t.Errorf("GetSnatStatus = %v, %v", snat, err)
	}
}

func TestResumeRunsTheStoredVersion(t *testing.T) {
	h := newHarness(t)
	if _, err := h.client.Apply(bg, &xlbv1.ApplyRequest{Config: h.config(", scheduler: wlc")}); err != nil {
		t.Fatal(err)
	}
	cv, err := h.store.Current()
	if err != nil {
		t.Fatal(err)
	}
	// A second server on the same store, as after a restart.
	s2 := New(Options{Store: h.store, Applier: applierFunc(func(context.Context, *xlbv1.Config) (uint64, error) { return 1, nil })})
	if err := s2.Resume(bg, cv); err != nil {
		t.Fatal(err)
	}
	cfg, v := s2.Running()
	if v != 2 || cfg.GetLoadBalancers()[0].GetListeners()[0].GetScheduler() != xlbv1.Scheduler_wlc {
		t.Errorf("resumed version %d, want 2 with wlc", v)
	}
	if cur, _ := h.store.CurrentVersion(); cur != 2 {
		t.Errorf("Resume wrote a version: current %d", cur)
	}
}

type applierFunc func(context.Context, *xlbv1.Config) (uint64, error)

func (f applierFunc) Apply(ctx context.Context, cfg *xlbv1.Config) (uint64, error) {
	return f(ctx, cfg)
}

func hasChange(cs []*xlbv1.Change, path, old, new string) bool {
	for _, c := range cs {
		if c.GetPath() == path && c.GetOldValue() == old && c.GetNewValue() == new {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }

// health is a backend's health as GetStats reports it.
func (h *harness) health(backend string) xlbv1.HealthState {
	h.t.Helper()
	stats, err := h.client.GetStats(bg, &xlbv1.GetStatsRequest{})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, b := range stats.GetBackends() {
		if b.GetBackend() == backend {
			return b.GetHealth()
		}
	}
	return xlbv1.HealthState_HEALTH_STATE_UNSPECIFIED
}
