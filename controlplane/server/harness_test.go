package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/xlbproject/xlb/bench/serve"
	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/controlplane/reconcile"
	"github.com/xlbproject/xlb/controlplane/store"
	"github.com/xlbproject/xlb/dataplane/health"
	"github.com/xlbproject/xlb/dataplane/l4"
)

// harness is a control server over real engines (the userspace L4 proxy
// and the health checker) on loopback, plus an engine that refuses any
// configuration tagged refuse, reached over an in-memory connection.
type harness struct {
	t        *testing.T
	srv      *Server
	client   xlbv1.ControlServiceClient
	store    *store.Store
	backends map[string]*backend // by name
	port     int                 // the listener's port on 127.0.0.1
}

type backend struct {
	name string
	addr string // 127.0.0.1:port
	port int
	stop context.CancelFunc
	done chan struct{}
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &backend{name: name, addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		_ = serve.NewTCPEcho(name).Serve(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-b.done })
	return b
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// refuser is an engine that refuses configurations with a load balancer
// tagged refuse, to show that a refusal changes nothing.
type refuser struct{}

func (refuser) Name() string { return "refuser" }

func (refuser) Prepare(_ context.Context, cfg *xlbv1.Config) (reconcile.Staged, error) {
	for _, lb := range cfg.GetLoadBalancers() {
		if _, ok := lb.GetTags()["refuse"]; ok {
			return nil, errors.New("refused on purpose")
		}
	}
	return nopStaged{}, nil
}

type nopStaged struct{}

func (nopStaged) Commit() {}
func (nopStaged) Abort()  {}

// yaml is the harness's configuration: one tcp listener over the backends,
// checked every second; extra is appended to the listener's flow mapping.
func (h *harness) yaml(extra string) string {
	var servers []string
	for _, name := range []string{"a", "b"} {
		servers = append(servers, fmt.Sprintf("{address: 127.0.0.1, port: %d}", h.backends[name].port))
	}
	if !strings.Contains(extra, "scheduler:") {
		extra = ", scheduler: rr" + extra
	}
	return fmt.Sprintf(`node: {xdp_mode: off}
load_balancers:
  - id: lb
    address: 127.0.0.1
    servers: [%s]
    listeners:
      - {protocol: tcp, port: %d, health_check: {interval: 1s, timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 2}%s}
`, strings.Join(servers, ", "), h.port, extra)
}

func (h *harness) config(extra string) *xlbv1.Config {
	h.t.Helper()
	cfg, err := config.Load([]byte(h.yaml(extra)), h.t.TempDir())
	if err != nil {
		h.t.Fatalf("test configuration: %v", err)
	}
	return cfg
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, backends: map[string]*backend{}, port: freePort(t)}
	for _, n := range []string{"a", "b"} {
		h.backends[n] = startBackend(t, n)
	}
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h.store = st

	reg := prometheus.NewRegistry()
	backends := reconcile.NewBackends()
	l4e, err := l4.New(reg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := health.NewManager(health.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	l4a := reconcile.NewL4(l4e, backends, reconcile.Placement{}, nil)
	ha := reconcile.NewHealth(mgr, backends)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ha.Drain(ctx)
		l4a.Drain(ctx)
	})
	rec := reconcile.New(l4a, refuser{}, ha)
	h.srv = New(Options{Store: st, Applier: rec, Backends: backends, Health: mgr, Gatherer: reg})
	if _, _, err := h.srv.Change(context.Background(), h.config(""), store.Record{Source: "test"}, 0); err != nil {
		t.Fatalf("initial apply: %v", err)
	}
	h.client = dialBufconn(t, NewGRPCServer(h.srv))
	return h
}

func dialBufconn(t *testing.T, g *grpc.Server) xlbv1.ControlServiceClient {
	t.Helper()
	ln := bufconn.Listen(1 << 20)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = g.Serve(ln)
	}()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		wg.Wait()
	})
	return xlbv1.NewControlServiceClient(conn)
}

// who opens a connection through the listener and returns it with the
// name of the backend that answered.
func (h *harness) who() (net.Conn, string) {
	h.t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.port), 2*time.Second)
	if err != nil {
		h.t.Fatalf("connecting to the listener: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	name, err := serve.WhoAmITCP(ctx, c)
	if err != nil {
		c.Close()
		h.t.Fatalf("whoami through the listener: %v", err)
	}
	return c, name
}

func (h *harness) count(n int) map[string]int {
	h.t.Helper()
	out := map[string]int{}
	for range n {
		c, name := h.who()
		c.Close()
		out[name]++
	}
	return out
}

func (h *harness) version() uint64 {
	h.t.Helper()
	r, err := h.client.Get(context.Background(), &xlbv1.GetRequest{})
	if err != nil {
		h.t.Fatalf("Get: %v", err)
	}
	return r.GetInfo().GetVersion()
}

func wantCode(t *testing.T, err error, code codes.Code) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("error = %v, want code %v", err, code)
	}
	return st
}

// violations returns the field paths of an INVALID_ARGUMENT's BadRequest.
func violations(t *testing.T, st *status.Status) []string {
	t.Helper()
	var out []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField())
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("status %v has no field violations", st)
	}
	return out
}
