package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "notify.sock")
		name := path
		if abstract {
			name = "\x00nfmirror-test-" + filepath.Base(t.TempDir())
			path = "@" + name[1:]
		}
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		t.Setenv(Socket, path)
		if err := Notify(append([]string{"READY=1"}, Reloading()...)...); err != nil {
			t.Fatalf("Notify: %v", err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got := string(buf[:n])
		if !strings.HasPrefix(got, "READY=1\nRELOADING=1\nMONOTONIC_USEC=") || !strings.HasSuffix(got, "\n") {
			t.Errorf("abstract=%v: datagram %q", abstract, got)
		}
	}
	t.Setenv(Socket, "")
	if err := Notify("READY=1"); err != nil {
		t.Errorf("Notify without a socket: %v, want nil", err)
	}
}
