package labsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xlbproject/xlb/internal/netlab"
)

// BirdBinary is Debian bird2's daemon; birdc is its client.
const (
	BirdBinary  = "bird"
	BirdcBinary = "birdc"
)

// ErrNoBird reports that BIRD 2 is not installed (Debian package bird2).
var ErrNoBird = errors.New("BIRD 2 is not installed (apt-get install bird2)")

// Bird is a BIRD 2 daemon running in a lab host with its own
// configuration, control socket and pid file (nothing under /etc or /run
// is used, so a host's own BIRD, if any, is never involved).
type Bird struct {
	lab  *netlab.Lab
	host string
	sock string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartBird writes conf into dir and runs bird in the foreground in host,
// logging to log (may be nil). It returns once the control socket answers.
func StartBird(ctx context.Context, lab *netlab.Lab, host, dir, conf string, log io.Writer) (*Bird, error) {
	if _, err := exec.LookPath(BirdBinary); err != nil {
		return nil, ErrNoBird
	}
	cfg := filepath.Join(dir, host+".bird.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	b := &Bird{lab: lab, host: host, sock: filepath.Join(dir, host+".bird.ctl"), done: make(chan struct{})}
	b.cmd = lab.Command(context.Background(), host, BirdBinary, "-f", "-c", cfg, "-s", b.sock,
		"-P", filepath.Join(dir, host+".bird.pid"))
	b.cmd.Stdout, b.cmd.Stderr = log, log
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: starting bird: %w", host, err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if _, err := b.Ctl(ctx, "show", "status"); err == nil {
			return b, nil
		}
		select {
		case <-b.done:
			return nil, fmt.Errorf("%s: bird exited: %v (configuration %s)", host, b.err, cfg)
		case <-ctx.Done():
			b.Kill()
			return nil, fmt.Errorf("%s: bird's control socket does not answer: %w", host, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Ctl runs a birdc command against this daemon and returns its output.
func (b *Bird) Ctl(ctx context.Context, args ...string) (string, error) {
	out, err := b.lab.Run(ctx, b.host, BirdcBinary, append([]string{"-s", b.sock}, args...)...)
	return string(out), err
}

// Established returns the names of the daemon's BGP sessions that are up.
func (b *Bird) Established(ctx context.Context) ([]string, error) {
	out, err := b.Ctl(ctx, "show", "protocols")
	if err != nil {
		return nil, err
	}
	var up []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[1] == "BGP" && f[3] == "up" && strings.Contains(line, "Established") {
			up = append(up, f[0])
		}
	}
	return up, nil
}

func (b *Bird) signal(sig syscall.Signal) { _ = syscall.Kill(-b.cmd.Process.Pid, sig) }

// Kill stops the daemon at once (SIGKILL), as a crash would, and waits.
func (b *Bird) Kill() {
	b.signal(syscall.SIGKILL)
	<-b.done
}

// BFD timers of the lab: a dead peer is noticed within 300 ms.
const birdBFD = `protocol bfd {
	interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}
`

// birdBGPTimers make sessions come up within a second or two of start.
const birdBGPTimers = `connect delay time 1; connect retry time 1; error wait time 1, 5;`

// RouterBirdConf is an ECMP router's configuration: one eBGP session
// (with BFD) to each neighbor, every route learned, equal paths merged
// into one multipath kernel route.
func RouterBirdConf(routerID string, localAS int, neighbors []string, neighborAS int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "router id %s;\nlog stderr all;\n", routerID)
	b.WriteString("protocol device { scan time 1; }\n")
	b.WriteString("protocol kernel {\n\tmerge paths on;\n\tipv4 { import none; export all; };\n}\n")
	b.WriteString(birdBFD)
	fmt.Fprintf(&b, "template bgp node {\n\tlocal as %d;\n\tbfd on;\n\t%s\n\tipv4 { import all; export none; };\n}\n", localAS, birdBGPTimers)
	for i, n := range neighbors {
		fmt.Fprintf(&b, "protocol bgp node%d from node { neighbor %s as %d; }\n", i+1, n, neighborAS)
	}
	return b.String()
}

// NodeBirdConf is a gateway node's configuration, as docs/scale-out.md
// describes it: the VIP routes xlbd keeps in kernel table vipTable go to
// the client side's router; a default route towards that router goes to
// the backend side's router, so the backends' replies come back through
// the nodes that are alive.
func NodeBirdConf(routerID string, localAS, vipTable int, front string, frontAS int, back string, backAS int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "router id %s;\nlog stderr all;\n", routerID)
	b.WriteString("protocol device { scan time 1; }\n")
	fmt.Fprintf(&b, "protocol kernel xlb_vips {\n\tkernel table %d;\n\tlearn;\n\tscan time 1;\n\tipv4 { import all; export none; };\n}\n", vipTable)
	fmt.Fprintf(&b, "protocol static client_side {\n\tipv4;\n\troute 0.0.0.0/0 via %s;\n}\n", front)
	b.WriteString(birdBFD)
	fmt.Fprintf(&b, "protocol bgp upstream {\n\tlocal as %d;\n\tneighbor %s as %d;\n\tbfd on;\n\t%s\n\tipv4 { import none; export where proto = \"xlb_vips\"; };\n}\n",
		localAS, front, frontAS, birdBGPTimers)
	fmt.Fprintf(&b, "protocol bgp downstream {\n\tlocal as %d;\n\tneighbor %s as %d;\n\tbfd on;\n\t%s\n\tipv4 { import none; export where proto = \"client_side\"; };\n}\n",
		localAS, back, backAS, birdBGPTimers)
	return b.String()
}
