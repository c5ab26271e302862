package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateListsEveryErrorAndExits1(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(bad, []byte(`
load_balancers:
  - id: lb
    address: 198.51.100.1
    servers: [{address: 10.0.0.1, weight: 101}]
    listeners:
      - {protocol: tcp, port: 80}
      - {protocol: tcp, port: 80}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte("load_balancers: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run([]string{"validate", good, bad}, &out, &errOut)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; output:\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		good + ": ok",
		bad + ": invalid",
		"load_balancers[0].servers[0].weight",
		"load_balancers[0].listeners[1].port: 80 is already used by listeners[0]",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestValidateShippedConfigs(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs found: %v", err)
	}
	var out, errOut bytes.Buffer
	if code := run(append([]string{"validate"}, files...), &out, &errOut); code != 0 {
		t.Fatalf("xlbd validate configs/*.yaml exited %d:\n%s", code, out.String())
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"version"}, 0, "xlbd "},
		{[]string{}, 2, "Usage"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"validate"}, 2, "name at least one"},
		{[]string{"run", "--log-format", "xml"}, 2, "--log-format"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(tt.args, &out, &errOut)
		if code != tt.code || !strings.Contains(out.String()+errOut.String(), tt.out) {
			t.Errorf("xlbd %v: exit %d, output %q; want exit %d containing %q",
				tt.args, code, out.String()+errOut.String(), tt.code, tt.out)
		}
	}
}
