package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

func cfg(name string) *xlbv1.Config {
	return &xlbv1.Config{Node: &xlbv1.Node{Name: name}}
}

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func commit(t *testing.T, s *Store, r Record) uint64 {
	t.Helper()
	v, err := s.Stage(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestStageCommitDiscardAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if cv, err := s.Current(); err != nil || cv != nil {
		t.Fatalf("empty store: Current = %v, %v; want nil", cv, err)
	}
	if v := commit(t, s, Record{Config: cfg("a"), Source: "file x.yaml", FileHash: "h1"}); v != 1 {
		t.Fatalf("first version = %d, want 1", v)
	}

	// A staged version is not current and not listed until committed.
	v2, err := s.Stage(Record{Config: cfg("b"), Source: "api apply", Comment: "try"})
	if err != nil || v2 != 2 {
		t.Fatalf("Stage = %d, %v", v2, err)
	}
	if cur, _ := s.CurrentVersion(); cur != 1 {
		t.Errorf("current after Stage = %d, want 1", cur)
	}
	if _, err := s.Get(2); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(staged) = %v, want ErrNotFound", err)
	}
	if err := s.Discard(v2); err != nil {
		t.Fatal(err)
	}
	// The next change reuses the number: versions stay contiguous.
	v2, err = s.Stage(Record{Config: cfg("c"), Source: "api apply"})
	if err != nil || v2 != 2 {
		t.Fatalf("Stage after Discard = %d, %v", v2, err)
	}
	if err := s.Commit(v2); err != nil {
		t.Fatal(err)
	}
	// A crash after Stage: the reopened store runs the committed version.
	if _, err := s.Stage(Record{Config: cfg("crashed")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	defer s.Close()
	cv, err := s.Current()
	if err != nil || cv.GetInfo().GetVersion() != 2 || cv.GetConfig().GetNode().GetName() != "c" {
		t.Fatalf("after reopen Current = %v, %v; want version 2 (c)", cv, err)
	}
	if cv.GetInfo().GetSource() != "api apply" || cv.GetInfo().GetCreated() == nil {
		t.Errorf("info = %v, want source and creation time", cv.GetInfo())
	}
	if h, _ := s.FileHash(); h != "h1" {
		t.Errorf("FileHash = %q, want h1 (version 2 came from the API)", h)
	}
	cur, list, err := s.List()
	if err != nil || cur != 2 || len(list) != 2 || list[0].GetVersion() != 2 || list[1].GetVersion() != 1 {
		t.Fatalf("List = %d %v %v; want current 2 and versions 2, 1", cur, list, err)
	}
	if v := commit(t, s, Record{Config: cfg("d")}); v != 3 {
		t.Fatalf("version after the crashed stage = %d, want 3", v)
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("store file mode %v (%v), want 0600", st.Mode(), err)
	}
}

func TestKeepsTheLast20Versions(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	for i := 1; i <= 25; i++ {
		commit(t, s, Record{Config: cfg(fmt.Sprint(i))})
	}
	cur, list, err := s.List()
	if err != nil || cur != 25 || len(list) != Keep {
		t.Fatalf("List: current %d, %d versions, %v; want 25 and %d", cur, len(list), err, Keep)
	}
	if list[Keep-1].GetVersion() != 6 {
		t.Errorf("oldest kept = %d, want 6", list[Keep-1].GetVersion())
	}
	if _, err := s.Get(5); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(5) = %v, want ErrNotFound", err)
	}
	cv, err := s.Get(6)
	if err != nil || cv.GetConfig().GetNode().GetName() != "6" {
		t.Errorf("Get(6) = %v, %v", cv, err)
	}
}

func TestAdminStatesPersist(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.SetAdminStates([]string{"10.0.0.1:80", "10.0.0.1:81"}, xlbv1.AdminState_drain); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAdminStates([]string{"10.0.0.1:81"}, xlbv1.AdminState_enabled); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	got, err := s.AdminStates()
	if err != nil || len(got) != 1 || got["10.0.0.1:80"] != xlbv1.AdminState_drain {
		t.Fatalf("AdminStates = %v, %v; want only 10.0.0.1:80 drain", got, err)
	}
}

func TestASecondOpenIsRefusedClearly(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Open = %v, want a refusal naming the lock", err)
	}
}
