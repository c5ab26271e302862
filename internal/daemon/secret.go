package daemon

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// cookieSecretFile keys the HTTP proxy's persistence cookies. Keeping it in
// the state directory means a restarted xlbd still recognises the cookies
// its predecessor handed out, so sticky clients stay where they were.
const cookieSecretFile = "l7-cookie.key"

// loadOrCreateSecret returns the 32-byte secret in dir, creating it (0600)
// the first time.
func loadOrCreateSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, cookieSecretFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("%s: %d bytes, want 32 (delete it to have a new one made)", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	return b, nil
}
