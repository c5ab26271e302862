// Package peers runs the systems xlb is compared with — HAProxy and NGINX
// for HTTP, nftables DNAT and masquerade for L4 and SNAT — inside a
// network-namespace lab, each configured for its best (the templates in this
// directory say why for every setting).
package peers

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"os/exec"
	"strings"
	"text/template"
)

//go:embed *.tmpl
var templateFS embed.FS

// Lab runs commands in a lab's namespaces; *netlab.Lab implements it.
type Lab interface {
	Command(ctx context.Context, host, name string, args ...string) *exec.Cmd
	Run(ctx context.Context, host, name string, args ...string) ([]byte, error)
}

// Backend is one upstream server.
type Backend struct {
	Name string // "be1"
	IP   string
	Port int
}

func render(name string, data any) ([]byte, error) {
	t, err := template.New(name).Option("missingkey=error").ParseFS(templateFS, name)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// cpuMask is NGINX's worker_cpu_affinity mask for one core: "10" for core 1.
func cpuMask(cpu int) string { return "1" + strings.Repeat("0", cpu) }
