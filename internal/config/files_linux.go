package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrRunning is wrapped by Lock when another process holds the instance's
// lock: an instance with this identity is running.
var ErrRunning = errors.New("an nfmirror with this identity is running")

// EnsureStateDir creates the state directory (mode 0700) if it is missing
// and refuses one that is a symbolic link, not a directory, or writable by
// users other than its owner: the state file says what to undo as root.
func (i Instance) EnsureStateDir() error {
	fi, err := os.Lstat(i.StateDir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(i.StateDir, 0o700); err != nil {
			return fmt.Errorf("create state directory: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("state directory %s is a symbolic link: give its target as -state-dir", i.StateDir)
	case !fi.IsDir():
		return fmt.Errorf("state directory %s is not a directory", i.StateDir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("state directory %s is writable by others (mode %04o): want 0700 or 0755", i.StateDir, fi.Mode().Perm())
	}
	return nil
}

// Lock is an instance's claim on its identity, held while it runs.
type Lock struct{ f *os.File }

// Lock takes the instance's lock without waiting: only one process with
// this identity runs at a time, and flush never undoes a running instance.
// The lock file records the holder's pid. A lock held by another process
// returns an error wrapping ErrRunning that names its pid.
func (i Instance) Lock() (*Lock, error) {
	if err := i.EnsureStateDir(); err != nil {
		return nil, err
	}
	path := i.LockPath()
	for range 3 {
		f, err := lockFile(path)
		if err != nil {
			return nil, err
		}
		if f != nil {
			return &Lock{f: f}, nil
		}
		// The file was removed by its last holder between our open and
		// our lock: take the new one.
	}
	return nil, fmt.Errorf("lock %s: it keeps being replaced", path)
}

// lockFile opens and locks path. It returns nil, nil when the file it
// locked is no longer the one at path.
func lockFile(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			if pid := strings.TrimSpace(string(b[:n])); pid != "" {
				return nil, fmt.Errorf("%w (pid %s holds %s)", ErrRunning, pid, path)
			}
			return nil, fmt.Errorf("%w (%s is locked)", ErrRunning, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	var held, now unix.Stat_t
	if unix.Fstat(fd, &held) != nil || unix.Lstat(path, &now) != nil || held.Ino != now.Ino || held.Dev != now.Dev {
		f.Close()
		return nil, nil
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Release gives the lock up and removes the lock file.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	name := l.f.Name()
	// Removed while still held: a new instance that opened the old file
	// a moment ago gets the lock on a file nobody will look for, and takes
	// a fresh one on its next try.
	err := os.Remove(name)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Held reports whether a running process holds the instance's lock, and
// its pid if the lock file says.
func (i Instance) Held() (bool, string) {
	f, err := os.Open(i.LockPath())
	if err != nil {
		return false, ""
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return false, ""
	}
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	return true, strings.TrimSpace(string(b[:n]))
}
