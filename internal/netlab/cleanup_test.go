package netlab

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperEnv selects a mode of TestSubprocessHelper in a child process.
const helperEnv = "XLB_NETLAB_HELPER"

// TestSubprocessHelper is not a test of its own: the tests below run the
// test binary again with helperEnv set, to panic or die inside a lab.
func TestSubprocessHelper(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("runs only as a child of the cleanup tests")
	}
	lab := New(t, ClientGatewayBackends(1))
	cmd := lab.Command(context.Background(), BackendHost(1), "sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("PREFIX=%s PID=%d\n", lab.Prefix(), cmd.Process.Pid)
	switch mode {
	case "panic":
		panic("helper panics inside a lab")
	case "hang":
		time.Sleep(time.Minute) // until the parent kills us
	}
}

// startHelper runs the helper in mode and returns it with the lab prefix
// and the pid of the command it started in the lab.
func startHelper(t *testing.T, mode string) (cmd *exec.Cmd, prefix string, pid int, output func() string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(exe, "-test.run=^TestSubprocessHelper$", "-test.count=1", "-test.timeout=90s")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	// Our own pipe rather than StdoutPipe: Wait must not close it before
	// everything is read.
	stdout, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	t.Cleanup(func() { stdout.Close() })
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	seen := &syncBuffer{}
	rd := bufio.NewReader(stdout)
	for {
		line, err := rd.ReadString('\n')
		seen.Write([]byte(line))
		if n, _ := fmt.Sscanf(line, "PREFIX=%s PID=%d", &prefix, &pid); n == 2 || err != nil {
			break
		}
	}
	copied := make(chan struct{})
	go func() { io.Copy(seen, rd); close(copied) }()
	output = func() string { <-copied; return seen.String() + stderr.String() }
	if prefix == "" {
		cmd.Wait()
		t.Fatalf("helper printed no prefix:\n%s", output())
	}
	return cmd, prefix, pid, output
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCloseRemovesEverything(t *testing.T) {
	linksBefore := hostLinks(t)
	topo := ClientGatewayBackends(2)
	lab := New(t, topo)
	prefix := lab.Prefix()
	ctx := context.Background()

	if got := labNamespaces(t, prefix); len(got) != len(topo.Hosts) {
		t.Fatalf("namespaces of the lab: %v, want %d", got, len(topo.Hosts))
	}
	checkHostLinks(t, topo, linksBefore, "after Build")

	// A command with a child in its process group, and a child that left
	// the group (setsid): Close must kill all three.
	cmd := lab.Command(ctx, BackendHost(1), "sh", "-c", "sleep 300 & echo $!; setsid sleep 300 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var children []int
	rd := bufio.NewReader(out)
	for range 2 {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("child pid %q: %v", line, err)
		}
		children = append(children, pid)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	bpffs := lab.BPFFSDir()
	bpffsMade := os.MkdirAll(bpffs, 0o700) == nil
	if !bpffsMade {
		t.Logf("no bpffs at %s; its removal is not checked", bpffsRoot)
	}

	if err := lab.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := lab.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	select {
	case err := <-waited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("command ended with %v, want killed", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("command still running after Close")
	}
	for _, pid := range children {
		if alive(pid) {
			t.Errorf("child %d survived Close", pid)
		}
	}
	if got := labNamespaces(t, prefix); len(got) != 0 {
		t.Errorf("namespaces left after Close: %v", got)
	}
	checkHostLinks(t, topo, linksBefore, "after Close")
	if _, err := os.Stat(bpffs); bpffsMade && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left after Close (stat: %v)", bpffs, err)
	}
	if err := lab.Do(HostClient, func() error { return nil }); err == nil {
		t.Error("Do after Close succeeded")
	}
	if err := lab.Command(ctx, HostClient, "true").Run(); err == nil {
		t.Error("Command after Close ran")
	}
}

func TestCloseAfterPanic(t *testing.T) {
	requireRoot(t)
	t.Run("deferred Close", func(t *testing.T) {
		var prefix string
		recovered := func() (v any) {
			defer func() { v = recover() }()
			lab := New(t, ClientGatewayBackends(1))
			defer lab.Close()
			prefix = lab.Prefix()
			panic("test body panics")
		}()
		if recovered != "test body panics" {
			t.Fatalf("recovered %v", recovered)
		}
		if got := labNamespaces(t, prefix); len(got) != 0 {
			t.Fatalf("namespaces left after a panic: %v", got)
		}
	})
	t.Run("test panics in a child process", func(t *testing.T) {
		cmd, prefix, pid, output := startHelper(t, "panic")
		err := cmd.Wait()
		if err == nil || !strings.Contains(output(), "helper panics inside a lab") {
			t.Fatalf("helper: %v, want a panic:\n%s", err, output())
		}
		if got := labNamespaces(t, prefix); len(got) != 0 {
			t.Fatalf("namespaces left after the test panicked: %v\n%s", got, output())
		}
		if alive(pid) {
			t.Fatalf("command %d survived the panicking test", pid)
		}
	})
}

func TestCleanupStale(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A lab in use (by this process) must survive.
	liveTopo := ClientGatewayBackends(1)
	live := New(t, liveTopo)

	// A run killed without Close leaves its namespaces.
	helper, crashed, _, output := startHelper(t, "hang")
	helper.Process.Kill()
	helper.Wait()
	if got := labNamespaces(t, crashed); len(got) == 0 {
		t.Fatalf("the killed run left no namespaces to clean:\n%s", output())
	}

	// A bare stale namespace, and one outside the prefix.
	stale := Prefix + randHex(t) + "-stale"
	keep := "keepme-" + randHex(t)
	for _, name := range []string{stale, keep} {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
	}
	t.Cleanup(func() {
		for _, name := range []string{stale, keep} {
			if slices.Contains(netnsList(t), name) {
				exec.Command("ip", "netns", "delete", name).Run()
			}
		}
	})

	removed, err := CleanupStale(ctx)
	if err != nil {
		t.Fatalf("CleanupStale: %v", err)
	}
	t.Logf("removed %v", removed)

	after := netnsList(t)
	if slices.Contains(after, stale) || !slices.Contains(removed, stale) {
		t.Errorf("%s: still present %v, reported %v", stale, slices.Contains(after, stale), slices.Contains(removed, stale))
	}
	if got := labNamespaces(t, crashed); len(got) != 0 {
		t.Errorf("namespaces of the killed run left: %v", got)
	}
	if !slices.Contains(removed, crashed+"-"+HostGateway) {
		t.Errorf("removed %v does not report %s-%s", removed, crashed, HostGateway)
	}
	if _, err := os.Stat(filepath.Join(lockDir, crashed+".lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file of the killed run left (stat: %v)", err)
	}
	if !slices.Contains(after, keep) {
		t.Errorf("%s was removed", keep)
	}
	for _, r := range removed {
		if strings.HasPrefix(r, live.Prefix()) {
			t.Errorf("removed %s of a live lab", r)
		}
	}
	if got := labNamespaces(t, live.Prefix()); len(got) != len(liveTopo.Hosts) {
		t.Errorf("live lab namespaces after cleanup: %v", got)
	}
	if err := live.Ping(ctx, HostClient, BackendIP(1)); err != nil {
		t.Errorf("live lab broken by cleanup: %v", err)
	}
}

// requireRoot applies New's policy to tests that build labs in a child
// process: skip when not root, fail instead with CI=true.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("netlab tests need root")
		}
		t.Skip("netlab tests need root")
	}
}

// netnsList is `ip netns list`, names only.
func netnsList(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	var got []string
	for _, n := range netnsList(t) {
		if strings.HasPrefix(n, prefix+"-") {
			got = append(got, n)
		}
	}
	return got
}

// hostLinks returns the link names of this (the root) namespace, from
// `ip -o link`.
func hostLinks(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -o link: %v: %s", err, out)
	}
	names := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		names[name] = true
	}
	return names
}

// checkHostLinks fails if a host link vanished or if one of the
// topology's interface names appeared in the host. Other new links may be
// other programs' and are only logged.
func checkHostLinks(t *testing.T, topo Topology, before map[string]bool, when string) {
	t.Helper()
	ours := map[string]bool{}
	for _, l := range topo.Links {
		ours[l.A.Name], ours[l.B.Name] = true, true
	}
	for _, h := range topo.Hosts {
		for _, b := range h.Bridges {
			ours[b.Name] = true
		}
	}
	now := hostLinks(t)
	for name := range before {
		if !now[name] {
			t.Errorf("%s: host link %s vanished", when, name)
		}
	}
	for name := range now {
		switch {
		case before[name]:
		case ours[name]:
			t.Errorf("%s: host link %s appeared", when, name)
		default:
			t.Logf("%s: host link %s appeared (not a lab interface name)", when, name)
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

func randHex(t *testing.T) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}
