package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestDefaultsAndPaths(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	if d.SocketPath() != "/run/nfmirror/nfmirror.sock" || d.StatePath() != "/run/nfmirror/nfmirror.state.json" || d.LockPath() != "/run/nfmirror/nfmirror.lock" {
		t.Errorf("paths: %s %s %s", d.SocketPath(), d.StatePath(), d.LockPath())
	}
	other := Instance{Table: "lab2"}.WithDefaults()
	if other.SocketPath() == d.SocketPath() || other.StatePath() == d.StatePath() || other.LockPath() == d.LockPath() {
		t.Error("two identities share a file in the default state directory")
	}
	if got := d.DestMark(3); got != 0x6e666d03 {
		t.Errorf("DestMark(3) = %#x", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Instance)
		want string
	}{
		{"table name", func(i *Instance) { i.Table = "a b" }, "table name"},
		{"mark outside mask", func(i *Instance) { i.Mark, i.MarkMask = 0x1, 0xffffff00 }, "fwmark"},
		{"mask eats the destination byte", func(i *Instance) { i.MarkMask = 0xffffffff }, "low 8 bits"},
		{"priority after main", func(i *Instance) { i.Priority = 32766 }, "-rule-priority"},
		{"route tables over main", func(i *Instance) { i.RouteTable = 100 }, "-route-table"},
		{"queue", func(i *Instance) { i.QueueLen = 3 }, "-queue-len"},
	} {
		i := Default()
		tc.mod(&i)
		if err := i.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want an error about %s", tc.name, err, tc.want)
		}
	}
}

func TestLock(t *testing.T) {
	i := Instance{StateDir: filepath.Join(t.TempDir(), "state")}.WithDefaults()
	l, err := i.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(i.StateDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v, want mode 0700", err)
	}
	if held, pid := i.Held(); !held || pid != strconv.Itoa(os.Getpid()) {
		t.Errorf("Held = %v %q, want true and our pid", held, pid)
	}
	if _, err := i.Lock(); !errors.Is(err, ErrRunning) {
		t.Errorf("second Lock = %v, want ErrRunning", err)
	}
	other := i
	other.Table = "other"
	l2, err := other.Lock()
	if err != nil {
		t.Errorf("another identity in the same directory: %v", err)
	}
	l2.Release()
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if held, _ := i.Held(); held {
		t.Error("Held after Release")
	}
	l3, err := i.Lock()
	if err != nil {
		t.Fatalf("Lock after Release: %v", err)
	}
	l3.Release()
}

func TestStateDirRefused(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	for dir, want := range map[string]string{link: "symbolic link", open: "writable by others"} {
		if err := (Instance{StateDir: dir}).EnsureStateDir(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: EnsureStateDir = %v, want %q", dir, err, want)
		}
	}
}
