// Package store keeps xlbd's desired state on disk: the configuration
// versions (the last Keep of them), which one is running, and the
// operator's backend states, in one bbolt file.
//
// A change is written in two steps so that the store never names a version
// that did not reach the engines: Stage writes the next version without
// making it current; Commit makes it current once every engine took it;
// Discard drops it when one refused. A crash between the two leaves the
// staged version unused: the next Stage overwrites it and a restart runs
// the current one.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// Keep is how many committed versions are kept.
const Keep = 20

// FileName is the store's file in the state directory.
const FileName = "state.db"

var (
	bucketVersions = []byte("versions") // big-endian version -> ConfigVersion
	bucketMeta     = []byte("meta")
	bucketAdmin    = []byte("admin") // backend address:port -> AdminState name

	keyCurrent  = []byte("current")
	keyFileHash = []byte("file_hash")
	// staged file hash: written with a staged version, moved to keyFileHash by Commit.
	keyStagedHash = []byte("staged_file_hash")
)

// ErrNotFound is returned for a version the store does not keep.
var ErrNotFound = errors.New("version not kept")

// Store is an open state file. Its methods are safe for concurrent use.
type Store struct {
	db  *bolt.DB
	now func() time.Time
}

// Record is a change to stage.
type Record struct {
	Config *xlbv1.Config
	// Source says what made it ("file /etc/xlb/xlb.yaml", "api apply").
	Source  string
	Comment string
	// FileHash, when set, is the hash of the configuration file this
	// version was read from; Commit records it as the last file applied.
	FileHash string
}

// Open opens (creating it and its directory, 0700) the store in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: locked by another process (another xlbd with this state directory?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketVersions, bucketMeta, bucketAdmin} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialising %s: %w", path, err)
	}
	return &Store{db: db, now: time.Now}, nil
}

// Close releases the file.
func (s *Store) Close() error { return s.db.Close() }

// CurrentVersion returns the running version; 0 when nothing was committed.
func (s *Store) CurrentVersion() (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		v = current(tx)
		return nil
	})
	return v, err
}

// Current returns the running version with its configuration; nil when
// nothing was committed yet.
func (s *Store) Current() (*xlbv1.ConfigVersion, error) {
	var out *xlbv1.ConfigVersion
	err := s.db.View(func(tx *bolt.Tx) error {
		v := current(tx)
		if v == 0 {
			return nil
		}
		var err error
		out, err = get(tx, v)
		return err
	})
	return out, err
}

// Get returns one committed version; ErrNotFound when it is not kept.
func (s *Store) Get(version uint64) (*xlbv1.ConfigVersion, error) {
	var out *xlbv1.ConfigVersion
	err := s.db.View(func(tx *bolt.Tx) error {
		if version == 0 || version > current(tx) {
			return fmt.Errorf("version %d: %w", version, ErrNotFound)
		}
		var err error
		out, err = get(tx, version)
		return err
	})
	return out, err
}

// List returns the current version and the kept versions, newest first.
func (s *Store) List() (uint64, []*xlbv1.VersionInfo, error) {
	var cur uint64
	var out []*xlbv1.VersionInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		cur = current(tx)
		c := tx.Bucket(bucketVersions).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if decodeVersion(k) > cur {
				continue // staged, not committed
			}
			cv := &xlbv1.ConfigVersion{}
			if err := proto.Unmarshal(v, cv); err != nil {
				return fmt.Errorf("version %d: %w", decodeVersion(k), err)
			}
			out = append(out, cv.GetInfo())
		}
		return nil
	})
	return cur, out, err
}

// Stage writes r as the version after the current one, without making it
// current, and returns its number.
func (s *Store) Stage(r Record) (uint64, error) {
	var next uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		cur := current(tx)
		b := tx.Bucket(bucketVersions)
		// Anything above current was staged and never committed (a crash).
		var stale [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(encodeVersion(cur + 1)); k != nil; k, _ = c.Next() {
			stale = append(stale, append([]byte(nil), k...))
		}
		if err := deleteKeys(b, stale); err != nil {
			return err
		}
		next = cur + 1
		cv := &xlbv1.ConfigVersion{
			Info: &xlbv1.VersionInfo{
				Version: next, Created: timestamppb.New(s.now()), Source: r.Source, Comment: r.Comment,
			},
			Config: r.Config,
		}
		data, err := proto.Marshal(cv)
		if err != nil {
			return err
		}
		if err := b.Put(encodeVersion(next), data); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if r.FileHash != "" {
			return meta.Put(keyStagedHash, []byte(r.FileHash))
		}
		return meta.Delete(keyStagedHash)
	})
	if err != nil {
		return 0, fmt.Errorf("staging a version: %w", err)
	}
	return next, nil
}

// Commit makes the staged version current and drops the versions past Keep.
func (s *Store) Commit(version uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVersions)
		if cur := current(tx); version != cur+1 || b.Get(encodeVersion(version)) == nil {
			return fmt.Errorf("version %d is not the staged one (current %d)", version, cur)
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyCurrent, encodeVersion(version)); err != nil {
			return err
		}
		if h := meta.Get(keyStagedHash); h != nil {
			if err := meta.Put(keyFileHash, append([]byte(nil), h...)); err != nil {
				return err
			}
			if err := meta.Delete(keyStagedHash); err != nil {
				return err
			}
		}
		var old [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && decodeVersion(k)+Keep <= version; k, _ = c.Next() {
			old = append(old, append([]byte(nil), k...))
		}
		return deleteKeys(b, old)
	})
	if err != nil {
		return fmt.Errorf("committing version %d: %w", version, err)
	}
	return nil
}

// Discard drops a staged version that was not applied.
func (s *Store) Discard(version uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if version <= current(tx) {
			return fmt.Errorf("version %d is committed", version)
		}
		if err := tx.Bucket(bucketMeta).Delete(keyStagedHash); err != nil {
			return err
		}
		return tx.Bucket(bucketVersions).Delete(encodeVersion(version))
	})
	if err != nil {
		return fmt.Errorf("discarding version %d: %w", version, err)
	}
	return nil
}

// FileHash is the hash of the configuration file last committed from a
// file (Record.FileHash); "" when none was.
func (s *Store) FileHash() (string, error) {
	var h string
	err := s.db.View(func(tx *bolt.Tx) error {
		h = string(tx.Bucket(bucketMeta).Get(keyFileHash))
		return nil
	})
	return h, err
}

// SetFileHash records h as the hash of the configuration file last applied
// (a file whose content changed but whose configuration did not).
func (s *Store) SetFileHash(h string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFileHash, []byte(h))
	})
}

// AdminStates returns the operator's backend states (address:port ->
// state); backends without one are enabled.
func (s *Store) AdminStates() (map[string]xlbv1.AdminState, error) {
	out := map[string]xlbv1.AdminState{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAdmin).ForEach(func(k, v []byte) error {
			st, ok := xlbv1.AdminState_value[string(v)]
			if !ok {
				return fmt.Errorf("backend %s: unknown state %q", k, v)
			}
			out[string(k)] = xlbv1.AdminState(st)
			return nil
		})
	})
	return out, err
}

// SetAdminStates records states for backends in one transaction; enabled
// removes the entry.
func (s *Store) SetAdminStates(backends []string, st xlbv1.AdminState) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAdmin)
		for _, id := range backends {
			var err error
			if st == xlbv1.AdminState_enabled {
				err = b.Delete([]byte(id))
			} else {
				err = b.Put([]byte(id), []byte(st.String()))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteKeys deletes outside the cursor walk: deleting under a bbolt
// cursor makes it skip the next key.
func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func current(tx *bolt.Tx) uint64 {
	v := tx.Bucket(bucketMeta).Get(keyCurrent)
	if len(v) != 8 {
		return 0
	}
	return decodeVersion(v)
}

func get(tx *bolt.Tx, version uint64) (*xlbv1.ConfigVersion, error) {
	data := tx.Bucket(bucketVersions).Get(encodeVersion(version))
	if data == nil {
		return nil, fmt.Errorf("version %d: %w", version, ErrNotFound)
	}
	cv := &xlbv1.ConfigVersion{}
	if err := proto.Unmarshal(data, cv); err != nil {
		return nil, fmt.Errorf("version %d is damaged: %w", version, err)
	}
	return cv, nil
}

func encodeVersion(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeVersion(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
