package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xlbproject/xlb/internal/daemon"
)

// startNode runs an xlbd (in this process) called name, with no listeners,
// and returns its control socket.
func startNode(t *testing.T, dir, name string) string {
	t.Helper()
	cfg := filepath.Join(dir, name+".yaml")
	writeFile(t, cfg, fmt.Sprintf("node: {name: %s, xdp_mode: off}\n%s", name, groups("127.0.0.1")))
	sock := filepath.Join(dir, name+".sock")
	d, err := daemon.New(daemon.Options{
		ConfigPath: cfg, MetricsListen: "off", DrainTimeout: time.Second,
		StateDir: filepath.Join(dir, name+"-state"), ControlListen: "unix://" + sock,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("%s: Run: %v", name, err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, code := ctl("--socket", sock, "get"); code == 0 {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered on its socket", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func groups(addrs ...string) string {
	var servers []string
	for _, a := range addrs {
		servers = append(servers, fmt.Sprintf("{address: %s, port: 9}", a))
	}
	return fmt.Sprintf("server_groups:\n  - {id: web, servers: [%s]}\n", strings.Join(servers, ", "))
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func ctl(args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// running returns a node's running version, node name and servers.
func running(t *testing.T, sock string) (version, name, servers string) {
	t.Helper()
	out, errOut, code := ctl("--socket", sock, "get", "-o", "json")
	if code != 0 {
		t.Fatalf("get: %s", errOut)
	}
	var doc struct {
		Info   struct{ Version string }
		Config struct {
			Node         struct{ Name string }
			ServerGroups []struct {
				Servers []struct{ Address string }
			} `json:"server_groups"`
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("get -o json: %v\n%s", err, out)
	}
	var addrs []string
	for _, g := range doc.Config.ServerGroups {
		for _, s := range g.Servers {
			addrs = append(addrs, s.Address)
		}
	}
	return doc.Info.Version, doc.Config.Node.Name, strings.Join(addrs, ",")
}

func TestApplyToSeveralNodes(t *testing.T) {
	dir := t.TempDir()
	socks := []string{startNode(t, dir, "n1"), startNode(t, dir, "n2"), startNode(t, dir, "n3")}
	nodes := strings.Join(socks, ",")
	file := func(name, node string, addrs ...string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, fmt.Sprintf("node: {name: %s, xdp_mode: off}\n%s", node, groups(addrs...)))
		return p
	}

	// One file, every node: each keeps its own node section.
	two := file("two.yaml", "shared", "127.0.0.1", "127.0.0.2")
	out, errOut, code := ctl("--nodes", nodes, "apply", "-f", two)
	if code != 0 {
		t.Fatalf("apply --nodes: exit %d\n%s%s", code, out, errOut)
	}
	for i, s := range socks {
		want(t, "apply --nodes", out, fmt.Sprintf("%s (n%d): ok, version 2 applied", s, i+1))
		if v, name, servers := running(t, s); v != "2" || name != fmt.Sprintf("n%d", i+1) || servers != "127.0.0.1,127.0.0.2" {
			t.Errorf("%s after apply --nodes: version %s, node %q, servers %s; want 2, its own name, both servers", s, v, name, servers)
		}
	}
	out, _, code = ctl("--nodes", nodes, "apply", "-f", two)
	if code != 0 || strings.Count(out, "ok, version 2: no changes") != 3 {
		t.Errorf("the same apply again: exit %d\n%s", code, out)
	}

	// n2 moved on meanwhile: the version check refuses it there only.
	if _, errOut, code := ctl("--socket", socks[1], "apply", "-f", file("n2.yaml", "n2", "127.0.0.9")); code != 0 {
		t.Fatalf("apply on n2: %s", errOut)
	}
	three := file("three.yaml", "shared", "127.0.0.3")
	out, errOut, code = ctl("--nodes", nodes, "apply", "-f", three, "--expect-version", "2")
	if code != 1 {
		t.Errorf("apply --expect-version 2 with n2 at 3: exit %d, want 1", code)
	}
	want(t, "apply with a stale node", out, socks[0]+" (n1): ok, version 3 applied", socks[2]+" (n3): ok, version 3 applied",
		socks[1]+" (n2): FAILED: ", "expected version 2", "(Aborted)")
	want(t, "apply with a stale node", errOut, "failed on some nodes")
	if v, _, servers := running(t, socks[1]); v != "3" || servers != "127.0.0.9" {
		t.Errorf("n2 was changed by a refused apply: version %s, servers %s", v, servers)
	}

	// Refused by the nodes (invalid): applied nowhere.
	bad := file("bad.yaml", "shared", "not-an-ip")
	out, _, code = ctl("--nodes", nodes, "apply", "-f", bad)
	if code != 1 {
		t.Errorf("apply of an invalid file: exit %d, want 1", code)
	}
	want(t, "invalid apply --nodes", out, "FAILED", "server_groups[0].servers[0].address")
	for _, s := range socks {
		if v, _, _ := running(t, s); v != "3" {
			t.Errorf("%s: an invalid configuration changed the version to %s", s, v)
		}
	}

	// A node that does not answer: reported, the others applied.
	gone := filepath.Join(dir, "gone.sock")
	out, _, code = ctl("--nodes", socks[0]+","+gone, "--timeout", "2s", "apply", "-f", two, "-o", "json")
	if code != 1 {
		t.Errorf("apply with a node down: exit %d, want 1", code)
	}
	var report struct {
		Nodes []struct {
			Node, Name, Error string
			Version           uint64
			Changes           int
		}
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil || len(report.Nodes) != 2 {
		t.Fatalf("apply -o json: %v\n%s", err, out)
	}
	if r := report.Nodes[0]; r.Node != socks[0] || r.Name != "n1" || r.Version != 4 || r.Changes == 0 || r.Error != "" {
		t.Errorf("the node up: %+v, want version 4 applied", r)
	}
	if r := report.Nodes[1]; r.Node != gone || !strings.Contains(r.Error, "Unavailable") {
		t.Errorf("the node down: %+v, want Unavailable", r)
	}

	// Only apply runs on several nodes; a bad list is a usage error.
	if _, errOut, code := ctl("--nodes", nodes, "get"); code != 2 || !strings.Contains(errOut, "only apply") {
		t.Errorf("get --nodes: exit %d %s", code, errOut)
	}
	if _, errOut, code := ctl("--nodes", socks[0]+","+socks[0], "apply", "-f", two); code != 2 || !strings.Contains(errOut, "named twice") {
		t.Errorf("a node named twice: exit %d %s", code, errOut)
	}
}
