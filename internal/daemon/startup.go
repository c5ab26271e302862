package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xlbproject/xlb/configs"
	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/controlplane/store"
)

// What xlbd runs when it starts (docs/control-plane.md, "Which
// configuration runs"):
//
//   - The store is empty: the configuration file (--config, or the embedded
//     demo configuration) becomes version 1.
//   - The store has a current version and the file is the one last applied
//     from a file (same content hash): the stored version runs, so changes
//     made through the API since survive a restart.
//   - The file changed since it was last applied (or never was), or
//     --force-config is given: the file wins and becomes the next version;
//     the API's changes remain in the kept versions for a rollback.
//
// So editing the file and restarting does what it says, and a restart
// alone never undoes the API.

// fileConfig is the configuration file as read at start or reload.
type fileConfig struct {
	path string // "" for the embedded demo configuration
	cfg  *xlbv1.Config
	hash string
}

func (f *fileConfig) record() store.Record {
	return store.Record{Source: "file " + sourceName(f.path), FileHash: f.hash}
}

func sourceName(path string) string {
	if path == "" {
		return "embedded demo configuration"
	}
	return path
}

// readConfig reads and validates path, or the embedded demo configuration
// when path is empty, and hashes its content.
func readConfig(path string) (*fileConfig, error) {
	if path == "" {
		data := configs.DemoYAML()
		cfg, err := config.Load(data, ".")
		if err != nil {
			return nil, fmt.Errorf("embedded configuration: %w", err)
		}
		return &fileConfig{cfg: cfg, hash: hash(data)}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	cfg, err := config.Load(data, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	return &fileConfig{path: path, cfg: cfg, hash: hash(data)}, nil
}

func hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// startup is the choice: resume a stored version, or apply the file.
type startup struct {
	file   *fileConfig
	resume *xlbv1.ConfigVersion // nil: apply file
	reason string
}

func (s startup) config() *xlbv1.Config {
	if s.resume != nil {
		return s.resume.GetConfig()
	}
	return s.file.cfg
}

func (s startup) describe() string {
	if s.resume != nil {
		return fmt.Sprintf("stored version %d (%s)", s.resume.GetInfo().GetVersion(), s.reason)
	}
	return sourceName(s.file.path) + " (" + s.reason + ")"
}

// choose applies the precedence above.
func choose(st *store.Store, file *fileConfig, force bool) (startup, error) {
	cur, err := st.Current()
	if err != nil {
		return startup{}, fmt.Errorf("reading the stored state: %w", err)
	}
	last, err := st.FileHash()
	if err != nil {
		return startup{}, fmt.Errorf("reading the stored state: %w", err)
	}
	switch {
	case cur == nil:
		return startup{file: file, reason: "nothing stored yet"}, nil
	case force:
		return startup{file: file, reason: "--force-config"}, nil
	case last != file.hash:
		return startup{file: file, reason: "the file changed since it was last applied"}, nil
	}
	return startup{file: file, resume: cur, reason: "the file is unchanged since it was applied"}, nil
}
