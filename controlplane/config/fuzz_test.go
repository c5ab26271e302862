package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/xlbproject/xlb/controlplane/config"
)

// FuzzLoad: no input makes Load panic; what it accepts is valid and fully
// defaulted; what it refuses is explained field by field.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../../configs/*.yaml")
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", defaultsYAML, certsYAML, lbYAML("      - {protocol: https, port: 443, http3: true}\n"),
		"a: &a [*a]", "load_balancers: [{<<: {id: x}, address: 1.2.3.4}]", "node: {conntrack: {udp_timeout: -5s}}",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Load(data, dir)
		if err != nil {
			var errs config.Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T %q is not a non-empty config.Errors", err, err)
			}
			for _, e := range errs {
				if e.Msg == "" {
					t.Fatalf("empty message in %v", errs)
				}
			}
			return
		}
		if err := config.Validate(cfg); err != nil {
			t.Fatalf("Load returned a configuration Validate refuses: %v", err)
		}
		if again := config.WithDefaults(cfg); !proto.Equal(again, cfg) {
			t.Fatalf("Load returned a configuration with defaults left to apply")
		}
	})
}
